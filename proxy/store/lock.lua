-- Take or renew a named lock: free, or already held by this owner -> (re)set with a TTL. ARGV: owner, ttl ms.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
