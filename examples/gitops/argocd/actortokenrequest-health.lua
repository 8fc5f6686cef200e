-- Argo CD health check for actortokens.dev/ActorTokenRequest.
--
--   Pending (Reconciling=True)         -> Progressing, the Ready condition's message
--   Issued  (Ready=True)               -> Healthy,     "issued; expires at ..."
--   Failed  (Stalled=True)             -> Degraded,    "<reason>: <message>"
--   Expired (Expired=True)             -> Healthy,     "expired at ..."
--   Revoked (Revoked=True)             -> Healthy,     "revoked: <message>"
--   generation not yet observed        -> Progressing
--
-- An expired or revoked request is finished, so it is Healthy: a sync wave waits for
-- Healthy or Degraded, and would otherwise wait on it for ever.
-- Uses only what Argo CD gives argocd-cm scripts by default (no string, math or os).

local hs = {status = "Progressing", message = "waiting for the operator"}

local function condition(conditions, type)
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function holds(c)
  return c ~= nil and c.status == "True"
end

local function set(s)
  return s ~= nil and s ~= ""
end

-- The message, or the reason when there is no message.
local function either(message, reason)
  if set(message) then
    return message
  end
  return reason or ""
end

-- "<reason>: <message>", or whichever of the two is set.
local function join(reason, message)
  if set(reason) and set(message) then
    return reason .. ": " .. message
  end
  return either(message, reason)
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.message = "waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = status.conditions or {}
local ready = condition(conditions, "Ready")
local reconciling = condition(conditions, "Reconciling")
local stalled = condition(conditions, "Stalled")
local expired = condition(conditions, "Expired")
local revoked = condition(conditions, "Revoked")

-- Why it waits or failed: Ready says it, else the condition itself.
if holds(reconciling) then
  local why = ready or reconciling
  hs.message = either(why.message, why.reason)
  return hs
end

if holds(stalled) then
  hs.status = "Degraded"
  local why = ready or stalled
  hs.message = join(why.reason, why.message)
  return hs
end

if holds(revoked) then
  hs.status = "Healthy"
  hs.message = "revoked: " .. either(revoked.message, revoked.reason)
  return hs
end

-- what .. sep .. expiresAt, or just what when the expiry is not recorded.
local function at_expiry(what, sep)
  if set(status.expiresAt) then
    return what .. sep .. status.expiresAt
  end
  return what
end

if holds(expired) then
  hs.status = "Healthy"
  hs.message = at_expiry("expired", " at ")
  return hs
end

if holds(ready) then
  hs.status = "Healthy"
  hs.message = at_expiry("issued", "; expires at ")
  return hs
end

-- Not yet in the scheme's shape (an operator that predates it, say): still in progress.
if ready ~= nil then
  hs.message = join(ready.reason, ready.message)
end
return hs
