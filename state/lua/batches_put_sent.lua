
local ttl = tonumber(ARGV[1])
local items = cjson.decode(ARGV[4])
local texts, payloads, seen = {}, {}, {}
for i = 1, #items do
  texts[i] = ARGV[4 + i]
  payloads[2 * i - 1], payloads[2 * i] = items[i][1], texts[i]
  seen[2 * i - 1], seen[2 * i] = ARGV[2], items[i][1]
end
redis.call('set', KEYS[1], '[' .. table.concat(texts, ',') .. ']', 'EX', ttl)
local entry = cjson.decode(ARGV[3])
if #entry > 1 then
  redis.call('set', KEYS[2], ARGV[3], 'EX', ttl)
  local index = {}
  for i = 2, #entry do index[#index + 1], index[#index + 2] = entry[i], entry[1] end
  many('hset', KEYS[3], index)
  redis.call('expire', KEYS[3], ttl)
end
local bumps, counted = {}, 0
for i, item in ipairs(items) do
  if redis.call('set', KEYS[6 + i], 'produced', 'NX', 'EX', ttl) then
    counted = counted + 1
    bumps['produced'] = (bumps['produced'] or 0) + 1
    if item[2] ~= '' then bumps[item[2]] = (bumps[item[2]] or 0) + 1 end
  end
end
if #items > 0 then
  many('hset', KEYS[6], payloads)
  many('zadd', KEYS[5], seen)
end
for field, amount in pairs(bumps) do redis.call('hincrby', KEYS[4], field, amount) end
return counted
