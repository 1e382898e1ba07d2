
local events = cjson.decode(ARGV[3])
local keep = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('RPUSH', key, unpack(events[i]))
  redis.call('LTRIM', key, -keep, -1)
  redis.call('EXPIRE', key, ARGV[2])
end
return #KEYS
