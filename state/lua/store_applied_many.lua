
local items = cjson.decode(ARGV[2])
local ttl = tonumber(ARGV[1])
local bumps, counted, ids = {}, 0, {}
for i, item in ipairs(items) do
  redis.call('hset', KEYS[2 + 2 * i], unpack(item[2]))
  if redis.call('set', KEYS[3 + 2 * i], 'applied', 'NX', 'EX', ttl) then
    counted = counted + 1
    bumps['applied'] = (bumps['applied'] or 0) + 1
    for _, field in ipairs(item[3]) do bumps[field] = (bumps[field] or 0) + 1 end
  end
  ids[i] = item[1]
end
many('zrem', KEYS[2], ids)
many('hdel', KEYS[3], ids)
for field, amount in pairs(bumps) do redis.call('hincrby', KEYS[1], field, amount) end
return counted
