
tokens = math.min(tokens, 1 - tonumber(ARGV[4]) * rate)
redis.call('hset', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(now, ts)))
redis.call('expire', KEYS[1], 3600)
return 1
