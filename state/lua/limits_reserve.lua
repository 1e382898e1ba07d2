
local longest = tonumber(ARGV[4])
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate end
if wait > longest then return '-1' end
redis.call('hset', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', tostring(math.max(now, ts)))
redis.call('expire', KEYS[1], 3600)
return tostring(wait)
