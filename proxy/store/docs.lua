-- Documents of one kind: one hash (field "v" = the kind's version, "d:<id>" = a document), so a write and
-- its version bump are one atomic step on one key. ARGV: "put" id value | "delete" id.
-- Reply: put -> the new version; delete -> the new version, or 0 when the document did not exist.
local docs = KEYS[1]
if ARGV[1] == 'put' then
  redis.call('HSET', docs, 'd:' .. ARGV[2], ARGV[3])
  return redis.call('HINCRBY', docs, 'v', 1)
end
if redis.call('HDEL', docs, 'd:' .. ARGV[2]) == 0 then
  return 0
end
return redis.call('HINCRBY', docs, 'v', 1)
