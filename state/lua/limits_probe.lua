
local state = redis.call('hget', KEYS[1], 'state')
local untilv = tonumber(redis.call('hget', KEYS[1], 'until') or '0')
if (state == 'open' or state == 'half_open') and tonumber(ARGV[1]) >= untilv then
  redis.call('hset', KEYS[1], 'state', 'half_open', 'until', ARGV[2])
  return 1
end
return 0
