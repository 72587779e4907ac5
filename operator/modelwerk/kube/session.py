"""One aiohttp session per client, made when first needed: a session belongs to the event loop
it was made in, and the operator's loop only runs once kopf has started it."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp


class LazySession:
    """The session of one client: made on first use, and again after ``close``."""

    def __init__(
        self,
        connector: Callable[[], aiohttp.TCPConnector],
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self._connector = connector
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self._timeout is None:
                self._session = aiohttp.ClientSession(connector=self._connector())
            else:
                self._session = aiohttp.ClientSession(
                    connector=self._connector(), timeout=self._timeout
                )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
