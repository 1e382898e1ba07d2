
local counted = 0
for i = 1, #KEYS / 2 do
  if redis.call('set', KEYS[2 * i - 1], 'produced', 'NX', 'EX', tonumber(ARGV[1])) then
    redis.call('hincrby', KEYS[2 * i], 'produced', 1)
    if ARGV[i + 1] ~= '' then redis.call('hincrby', KEYS[2 * i], ARGV[i + 1], 1) end
    counted = counted + 1
  end
end
return counted
