
local state = redis.call('hget', KEYS[1], 'state') or 'closed'
if state == 'paused' then return 0 end
local failures = tonumber(redis.call('hget', KEYS[1], 'failures') or '0') or 0
if state ~= 'closed' or failures ~= 0 then
  redis.call('hset', KEYS[1], 'state', 'closed', 'until', '0', 'failures', '0', 'reason', '')
  return 1
end
return 0
