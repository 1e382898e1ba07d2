-- Take a batch's record locks in one call (state.records.Records.lock_many).
-- KEYS: the lock keys. ARGV[1]: the TTL in milliseconds; ARGV[2]: the batch's token.
-- Returns, per lock, "+" when taken, else "-" followed by its holder's token.
local answers = {}
for i = 1, #KEYS do
  if redis.call('set', KEYS[i], ARGV[2], 'NX', 'PX', ARGV[1]) then
    answers[i] = '+'
  else
    answers[i] = '-' .. (redis.call('get', KEYS[i]) or '')
  end
end
return answers
