
local stale = redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[1])
for _, member in ipairs(stale) do
  redis.call('zrem', KEYS[2], member)
  redis.call('zadd', KEYS[1], ARGV[2], member)
end
return #stale
