-- Argo CD health of a modelwerk.dev ModelVersion. Argo CD runs it with the object as `obj`
-- (Lua 5.1: base, string, table and math only).
local status = obj.status
if status == nil or status.phase == nil then
  return {status = "Progressing", message = "Waiting for the operator to verify the artifact"}
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  return {status = "Progressing", message = "Waiting for the operator to observe the latest spec"}
end
local phase = status.phase
local message = status.message or ("ModelVersion is " .. phase)
if phase == "Ready" then
  -- Archived versions stay Healthy: the artifact is verified, the stage is a registry decision.
  return {status = "Healthy", message = message}
elseif phase == "Pending" then
  return {status = "Progressing", message = message}
elseif phase == "Failed" then
  return {status = "Degraded", message = message}
end
return {status = "Unknown", message = "Unknown phase " .. phase .. ": " .. message}
