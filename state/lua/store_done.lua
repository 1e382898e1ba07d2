
local forgotten = 0
for i = 2, #ARGV do
  local score = redis.call('zscore', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[1]) then
    redis.call('zrem', KEYS[1], ARGV[i])
    forgotten = forgotten + 1
  end
end
return forgotten
