-- Settlement: release the reservation, charge the actual cost, correct TPM, append the ledger record and
-- report alert thresholds crossed, in one script. Idempotent by request id: the record's "s" field is
-- written here, so a replay (or a retry after a lost reply) finds it and changes nothing.
-- Each crossing is also appended to the tenant's alert feed (a stream read through a consumer group), so
-- that exactly one replica delivers it even if this script's reply never reaches the caller.
--
-- KEYS[1]                 the admission record (hash; created here when there was no admission)
-- KEYS[2]                 the tenant's ledger stream
-- KEYS[3]                 the tenant's alert feed (stream, with the consumer group ARGV[8])
-- KEYS[4 + 4*(i-1) + 0]   scope i: token amounts (hash "r:<id>" -> tokens, "sum")
-- KEYS[4 + 4*(i-1) + 1]   scope i: budget of the record's period (hash spent, reserved, "r:<id>")
-- KEYS[4 + 4*(i-1) + 2]   scope i: reservation deadlines of that period (zset)
-- KEYS[4 + 4*(i-1) + 3]   scope i: alert markers of that period (hash threshold -> 1)
-- ARGV: request id, actual tokens, cost, record json, ledger max length, record ttl ms, n scopes,
--       feed group, feed ttl ms, feed max length,
--       then per scope: ident, budget ("" = none), period, budget ttl ms ("" = none), thresholds ("0.5,0.8")
-- Reply: {{scope index, threshold index, spent after, period}, ...} for each threshold crossed.

local rid, actual, cost = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local record, ledger, feed, n = KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[7])

if redis.call('HEXISTS', record, 's') == 1 then
  return {}
end
redis.call('HSET', record, 's', '1')
redis.call('PEXPIRE', record, ARGV[6])

local crossed = {}
for i = 1, n do
  local k = 4 + 4 * (i - 1)
  local amounts, budget_key, deadlines, alerts = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local a = 10 + 5 * (i - 1)
  local ident, budget, period, budget_ms, thresholds = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]

  -- TPM: replace the estimate by the actual tokens while the entry is still in the window.
  local estimate = redis.call('HGET', amounts, 'r:' .. rid)
  if estimate then
    redis.call('HSET', amounts, 'r:' .. rid, ARGV[2])
    local delta = actual - tonumber(estimate)
    if delta ~= 0 then redis.call('HINCRBY', amounts, 'sum', delta) end
  end

  if budget ~= '' then
    local reserved_in = redis.call('HGET', record, 'p:' .. ident)
    if reserved_in and reserved_in ~= period then
      -- Admitted in an earlier period than the record's start (a request across midnight): charge and
      -- release where the reservation was made. These keys are not declared, but they carry the same
      -- hash tag, so they live in this slot: Redis Cluster allows them (it rejects only other slots).
      local stem = -#period - 1
      budget_key = string.sub(budget_key, 1, stem) .. reserved_in
      deadlines = string.sub(deadlines, 1, stem) .. reserved_in
      alerts = string.sub(alerts, 1, stem) .. reserved_in
      period = reserved_in
    end
    local held = redis.call('HGET', budget_key, 'r:' .. rid)
    if held then
      redis.call('HINCRBY', budget_key, 'reserved', '-' .. held)
      redis.call('HDEL', budget_key, 'r:' .. rid)
    end
    redis.call('ZREM', deadlines, rid)
    local after = redis.call('HINCRBY', budget_key, 'spent', cost)
    local before = after - tonumber(cost)
    -- The counter may have been created just now (a settlement without admission): give it its TTL.
    if budget_ms ~= '' and redis.call('PTTL', budget_key) == -1 then
      redis.call('PEXPIRE', budget_key, budget_ms)
    end
    local limit = tonumber(budget)
    if limit > 0 then
      local j = 0
      for threshold in string.gmatch(thresholds, '[^,]+') do
        j = j + 1
        local mark = tonumber(threshold) * limit
        -- HSETNX: each scope, period and threshold alerts once, whatever the order of settlements.
        if before < mark and mark <= after and redis.call('HSETNX', alerts, threshold, '1') == 1 then
          crossed[#crossed + 1] = {i, j, after, period}
          if redis.call('EXISTS', feed) == 0 then
            -- The group starts at the end of the new stream: every entry from here on is delivered.
            redis.call('XGROUP', 'CREATE', feed, ARGV[8], '$', 'MKSTREAM')
          end
          redis.call('XADD', feed, 'MAXLEN', '~', ARGV[10], '*', 'ident', ident, 'threshold', threshold,
            'period', period, 'spent', after, 'budget', budget)
          redis.call('PEXPIRE', feed, ARGV[9])
          if budget_ms ~= '' and redis.call('PTTL', alerts) == -1 then
            redis.call('PEXPIRE', alerts, budget_ms)
          end
        end
      end
    end
  end
end

redis.call('XADD', ledger, 'MAXLEN', '~', ARGV[5], '*', 'r', ARGV[4])
return crossed
