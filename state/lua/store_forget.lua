
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('hincrby', KEYS[2], ARGV[1], -1)
  for i = 2, #ARGV do redis.call('hincrby', KEYS[2], ARGV[i], -1) end
  return 1
end
return 0
