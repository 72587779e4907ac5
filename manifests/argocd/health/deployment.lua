-- Argo CD health of a modelwerk.dev Deployment. Argo CD runs it with the object as `obj`
-- (Lua 5.1: base, string, table and math only).
--
-- A rollout that waits for a person (manual pause, pause step, blue-green promotion with
-- autoPromote false) is Suspended, as Argo CD shows a paused Argo Rollout; an aborted rollout is
-- Degraded even though traffic is back on the stable version, because the desired version is
-- not the one serving.
local function condition(status, type_)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil or status.phase == nil then
  return {status = "Progressing", message = "Waiting for the operator to observe the Deployment"}
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  return {status = "Progressing", message = "Waiting for the operator to observe the latest spec"}
end
local phase = status.phase
local message = status.message or ("Deployment is " .. phase)
if phase == "Aborted" or phase == "Degraded" then
  return {status = "Degraded", message = message}
end
if status.paused == true then
  return {status = "Suspended", message = status.message or "Paused by a person; the resume command continues"}
end
local progressing = condition(status, "Progressing")
if phase == "Paused" or (progressing ~= nil and progressing.reason == "WaitingForPromotion") then
  return {status = "Suspended", message = message}
end
if phase == "Progressing" then
  return {status = "Progressing", message = message}
end
if phase == "Healthy" then
  local drift = condition(status, "DriftDetected")
  if drift ~= nil and drift.status == "True" then
    message = message .. "; drift detected: " .. (drift.message or drift.reason or "")
  end
  return {status = "Healthy", message = message}
end
return {status = "Unknown", message = "Unknown phase " .. phase .. ": " .. message}
