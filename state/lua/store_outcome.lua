
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
  redis.call('hincrby', KEYS[2], ARGV[1], 1)
  for i = 3, #ARGV do redis.call('hincrby', KEYS[2], ARGV[i], 1) end
  return 1
end
return 0
