-- Compare a page of a stream with its snapshot, and extend the stream's lock
-- (state.snapshots.Snapshots.compare).
-- KEYS[1]: the snapshot hash (key -> fingerprint); KEYS[2]: the stream's lock.
-- ARGV[1]: the lock's lease in milliseconds; ARGV[2]: JSON [[keys...], [fingerprints...]]
-- (one argument: packing and parsing a thousand separate ones costs the client more than
-- the comparison).
-- Returns "changed;missing": comma-separated 1-based positions whose fingerprint differs
-- from the snapshot's (new keys included), then those of keys the snapshot does not hold.
-- Only the few changes cross the wire back.
redis.call('pexpire', KEYS[2], ARGV[1])
local page = cjson.decode(ARGV[2])
local keys, fingerprints = page[1], page[2]
local changed, missing = {}, {}
for i = 1, #keys do
  local before = redis.call('hget', KEYS[1], keys[i])
  if not before then
    missing[#missing + 1] = i
    changed[#changed + 1] = i
  elseif before ~= fingerprints[i] then
    changed[#changed + 1] = i
  end
end
return table.concat(changed, ',') .. ';' .. table.concat(missing, ',')
