
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local found = {}
for _, id in ipairs(due) do
  local payload = redis.call('hget', KEYS[2], id)
  if payload then
    redis.call('zadd', KEYS[1], ARGV[3], id)
    table.insert(found, payload)
  else
    redis.call('zrem', KEYS[1], id)
  end
end
return found
