-- Admission: check every scope, then reserve in all of them or in none (one script, so atomic).
-- Idempotent by request id: a replay answers the stored decision and reserves nothing.
--
-- KEYS[1]                 the admission record (hash), also the idempotency marker
-- KEYS[2 + 4*(i-1) + 0]   scope i: request log (zset request id -> admit time), RPM and TPM window
-- KEYS[2 + 4*(i-1) + 1]   scope i: token amounts (hash "r:<id>" -> tokens, "sum" -> total in window)
-- KEYS[2 + 4*(i-1) + 2]   scope i: budget of the period (hash spent, reserved, "r:<id>" -> reserved cost)
-- KEYS[2 + 4*(i-1) + 3]   scope i: reservation deadlines of the period (zset request id -> deadline)
-- ARGV: request id, now, now - window, tokens, cost, deadline, window ttl ms, record ttl ms, n scopes,
--       then per scope: kind, ident, rpm, tpm, budget, period, budget ttl ms ("" = no limit / no ttl)
--
-- Times and scores are passed as strings and handed to Redis unchanged: Lua formats numbers with 14
-- significant digits, which would move a unix timestamp with microseconds.
-- Replies: {"admitted", limit_requests, remaining_requests, limit_tokens, remaining_tokens} ("" = none)
--          {"rate_limited", scope index, "rpm" | "tpm", oldest admit time}
--          {"budget_exceeded", scope index, "budget", "", spent, reserved}

local rid, now, cutoff = ARGV[1], ARGV[2], ARGV[3]
local tokens, cost, deadline = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local window_ms, record_ms, n = ARGV[7], ARGV[8], tonumber(ARGV[9])
local record = KEYS[1]

local seen = redis.call('HMGET', record, 'a', 'lr', 'rr', 'lt', 'rt', 's')
if seen[1] then
  return {'admitted', seen[2], seen[3], seen[4], seen[5]}
end
if seen[6] then
  -- Settled without an admission (a journal replayed after an outage): nothing left to reserve.
  return {'admitted', '', '', '', ''}
end

local function scope_args(i)
  local a = 9 + 7 * (i - 1)
  return ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
end

-- Drop entries that left the window, subtracting their token amounts (in chunks: unpack has a limit).
local function expire_window(log, amounts)
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', cutoff)
  if #old == 0 then return end
  local released = 0
  for first = 1, #old, 1000 do
    local fields = {}
    for j = first, math.min(first + 999, #old) do fields[#fields + 1] = 'r:' .. old[j] end
    local values = redis.call('HMGET', amounts, unpack(fields))
    for _, v in ipairs(values) do
      if v then released = released + tonumber(v) end
    end
    redis.call('HDEL', amounts, unpack(fields))
  end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
  if released ~= 0 then redis.call('HINCRBY', amounts, 'sum', -released) end
end

-- Release reservations whose holder never settled (a replica died mid-request), so a crash cannot
-- hold budget for the rest of the period. Bounded per call; the next admission continues.
local function expire_reservations(budget_key, deadlines)
  local stale = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(stale) do
    local held = redis.call('HGET', budget_key, 'r:' .. id)
    if held then
      redis.call('HINCRBY', budget_key, 'reserved', '-' .. held)
      redis.call('HDEL', budget_key, 'r:' .. id)
    end
    redis.call('ZREM', deadlines, id)
  end
end

local function oldest(log)
  local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  return first[2] or ''
end

-- Phase 1: check. Nothing is written except expiry of what already left a window.
local head = {'', '', '', ''}
local head_rpm = nil
for i = 1, n do
  local k = 2 + 4 * (i - 1)
  local log, amounts, budget_key, deadlines = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local kind, _, rpm, tpm, budget = scope_args(i)
  if rpm ~= '' or tpm ~= '' then
    expire_window(log, amounts)
    local count = redis.call('ZCARD', log)
    if rpm ~= '' and count >= tonumber(rpm) then
      return {'rate_limited', i, 'rpm', oldest(log)}
    end
    local sum = tonumber(redis.call('HGET', amounts, 'sum') or '0')
    if tpm ~= '' and sum + tokens > tonumber(tpm) then
      return {'rate_limited', i, 'tpm', oldest(log)}
    end
    -- Headroom: the first key scope with a request or token limit (as the memory store does).
    if kind == 'key' and (head_rpm == nil or head_rpm == 0) then
      head_rpm = tonumber(rpm)
      head = {rpm, '', tpm, ''}
      if rpm ~= '' then head[2] = tostring(tonumber(rpm) - count - 1) end
      if tpm ~= '' then head[4] = tostring(tonumber(tpm) - sum - tokens) end
    end
  end
  if budget ~= '' then
    expire_reservations(budget_key, deadlines)
    local held = redis.call('HMGET', budget_key, 'spent', 'reserved')
    local committed = tonumber(held[1] or '0') + tonumber(held[2] or '0')
    if committed + tonumber(cost) > tonumber(budget) then
      return {'budget_exceeded', i, 'budget', '', held[1] or '0', held[2] or '0'}
    end
  end
end

-- Phase 2: every scope has room; reserve in all of them.
local fields = {'a', '1', 'lr', head[1], 'rr', head[2], 'lt', head[3], 'rt', head[4]}
for i = 1, n do
  local k = 2 + 4 * (i - 1)
  local log, amounts, budget_key, deadlines = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local _, ident, rpm, tpm, budget, period, budget_ms = scope_args(i)
  if rpm ~= '' or tpm ~= '' then
    redis.call('ZADD', log, now, rid)
    redis.call('HSET', amounts, 'r:' .. rid, ARGV[4])
    redis.call('HINCRBY', amounts, 'sum', ARGV[4])
    -- Every entry is older than the window once nothing was admitted for that long.
    redis.call('PEXPIRE', log, window_ms)
    redis.call('PEXPIRE', amounts, window_ms)
  end
  if budget ~= '' then
    redis.call('HINCRBY', budget_key, 'reserved', cost)
    redis.call('HSET', budget_key, 'r:' .. rid, cost)
    redis.call('ZADD', deadlines, deadline, rid)
    if budget_ms ~= '' then
      redis.call('PEXPIRE', budget_key, budget_ms)
      redis.call('PEXPIRE', deadlines, budget_ms)
    end
    -- Settlement charges the period the reservation was made in, even if the record starts later.
    fields[#fields + 1] = 'p:' .. ident
    fields[#fields + 1] = period
  end
end
redis.call('HSET', record, unpack(fields))
redis.call('PEXPIRE', record, record_ms)
return {'admitted', head[1], head[2], head[3], head[4]}
