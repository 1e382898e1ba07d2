
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('zrem', KEYS[1], member)
  redis.call('zadd', KEYS[2], ARGV[3], member)
end
return due
