-- Renew record locks still held by their token (workers.leases.Leases).
-- KEYS: the lock keys. ARGV[1]: the lease in milliseconds; ARGV[1 + i]: the token of KEYS[i].
-- Returns, per lock, 1 when it was still held and is extended, 0 when it is lost (it
-- expired, or another worker took it over): its holder must write nothing more.
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[i + 1] then
    redis.call('pexpire', key, ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
