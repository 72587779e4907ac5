-- Argo CD health of a modelwerk.dev TrainingJob. Argo CD runs it with the object as `obj`
-- (Lua 5.1: base, string, table and math only).
local status = obj.status
if status == nil or status.phase == nil then
  return {status = "Progressing", message = "Waiting for the operator to start the training run"}
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  return {status = "Progressing", message = "Waiting for the operator to observe the latest spec"}
end
local phase = status.phase
local message = status.message or ("TrainingJob is " .. phase)
if phase == "Succeeded" then
  return {status = "Healthy", message = message}
elseif phase == "Pending" or phase == "Searching" or phase == "Running" then
  -- Pending also covers waiting for the Dataset, which reports its own health.
  return {status = "Progressing", message = message}
elseif phase == "Suspended" then
  -- A retraining template: it starts no run of its own, by design.
  return {status = "Suspended", message = message}
elseif phase == "Failed" or phase == "Rejected" then
  -- Rejected: the run finished but a gate failed, so no ModelVersion was registered.
  return {status = "Degraded", message = message}
end
return {status = "Unknown", message = "Unknown phase " .. phase .. ": " .. message}
