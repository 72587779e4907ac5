"""``kubectl modelwerk``: look at and steer modelwerk Deployments from a terminal.

A user-side client. It reads objects and writes only the ``modelwerk.dev/command`` annotation
(``modelwerk.api.commands``); the operator does the rest. It shares the API types with the
operator but none of its code, so it runs wherever kubectl does.

``cli`` parses arguments and maps failures to exit codes, ``cluster`` is the only module that
talks to the API server, and the ``render_*`` modules are pure: an object as the API server
returns it (a camelCase dict) in, text out.
"""
