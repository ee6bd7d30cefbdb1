-- Argo CD health check for passport.dev/AccessRequest.
-- Install it in argocd-cm as resource.customizations.health.passport.dev_AccessRequest, or contribute
-- this directory as resource_customizations/passport.dev/AccessRequest/ (health_test.yaml and
-- testdata/ hold its cases). It uses only what Argo CD opens for health scripts (base and table
-- libraries: no string, os or math), so it runs unchanged in the application controller.
--
--   Healthy      Active (access granted on every reachable target), or ended as asked: Completed, Expired
--   Progressing  Pending (waiting for approval), Provisioning, Revoking; also Active while the
--                operator has not yet seen the latest spec (e.g. `completed: true` just synced),
--                and no status yet
--   Degraded     Denied or Failed, or revocation stuck (condition RevocationStuck=True) in any phase
local hs = {}

local function present(text)
  return text ~= nil and text ~= ""
end

-- The first non-empty text of its arguments, in order.
local function first(a, b, c)
  if present(a) then return a end
  if present(b) then return b end
  return c
end

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function message_of(c)
  if c == nil then
    return nil
  end
  return c.message
end

local status = obj.status
if status == nil or not present(status.phase) then
  hs.status = "Progressing"
  hs.message = "waiting for the operator"
  return hs
end
local phase = status.phase

local stuck = condition(status, "RevocationStuck")
if stuck ~= nil and stuck.status == "True" then
  hs.status = "Degraded"
  hs.message = first(stuck.message, status.message, "revocation is stuck")
  return hs
end

if phase == "Active" then
  local generation = obj.metadata and obj.metadata.generation
  if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
    hs.status = "Progressing"
    hs.message = "waiting for the operator to act on generation " .. tostring(generation)
    return hs
  end
  hs.status = "Healthy"
  hs.message = first(message_of(condition(status, "Ready")), "access granted", "")
  if present(status.expiresAt) then
    hs.message = hs.message .. ", expires at " .. status.expiresAt
  end
  -- e.g. an extension awaiting approval: access stays as approved meanwhile
  if present(status.message) then
    hs.message = hs.message .. "; " .. status.message
  end
  return hs
end

if phase == "Completed" or phase == "Expired" then
  hs.status = "Healthy"
  hs.message = first(status.message, phase, "")
  return hs
end

if phase == "Denied" or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = first(status.message, phase, "")
  return hs
end

if phase == "Pending" then
  hs.status = "Progressing"
  hs.message = first(status.message, message_of(condition(status, "Approved")), "waiting for approval")
  return hs
end

if phase == "Provisioning" then
  hs.status = "Progressing"
  hs.message = first(message_of(condition(status, "Ready")), status.message, "creating the user on the targets")
  return hs
end

if phase == "Revoking" then
  hs.status = "Progressing"
  hs.message = "revoking access"
  if present(status.outcome) then
    hs.message = hs.message .. " (ends " .. status.outcome .. ")"
  end
  -- why, when it ends early: denied after approval, account lost, ...
  if present(status.message) then
    hs.message = hs.message .. ": " .. status.message
  end
  return hs
end

hs.status = "Unknown"
hs.message = "unknown phase " .. tostring(phase)
return hs
