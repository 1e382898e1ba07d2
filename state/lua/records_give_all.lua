-- Give record locks back in one call, each only if its token is still the one given
-- (state.records.Records.give_back).
-- KEYS: the lock keys. ARGV[i]: the token of KEYS[i].
-- Returns how many were given back.
local given = 0
for i = 1, #KEYS do
  if redis.call('get', KEYS[i]) == ARGV[i] then
    redis.call('del', KEYS[i])
    given = given + 1
  end
end
return given
