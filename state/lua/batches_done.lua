
local entry = redis.call('get', KEYS[2])
if entry then
  local list = cjson.decode(entry)
  for i = 2, #list, 1000 do
    local fields = {unpack(list, i, math.min(i + 999, #list))}
    local values = redis.call('hmget', KEYS[3], unpack(fields))
    local mine = {}
    for j = 1, #fields do
      if values[j] == list[1] then mine[#mine + 1] = fields[j] end
    end
    if #mine > 0 then redis.call('hdel', KEYS[3], unpack(mine)) end
  end
end
redis.call('del', KEYS[1], KEYS[2])
