
if redis.call('hget', KEYS[1], 'state') == 'half_open'
   and redis.call('hget', KEYS[1], 'until') == ARGV[1] then
  redis.call('hset', KEYS[1], 'until', ARGV[2])
  return 1
end
return 0
