
local cost = tonumber(ARGV[4])
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / rate
end
redis.call('hset', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('expire', KEYS[1], 3600)
return tostring(wait)
