-- Read many ledgers in one call (state.records.Records.ledgers).
-- KEYS: the ledger hashes. No ARGV.
-- Returns, per key, its fields and values as HGETALL returns them (empty when none).
local found = {}
for i, key in ipairs(KEYS) do found[i] = redis.call('hgetall', key) end
return found
