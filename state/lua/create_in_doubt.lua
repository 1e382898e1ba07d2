-- Before a create the target cannot deduplicate (workers.leases.Leases.create_in_doubt).
-- KEYS[1]: the record's lock; KEYS[2]: the record's create-in-doubt marker.
-- ARGV[1]: the caller's lock token; ARGV[2]: how long the create may take to land (ms).
-- Returns -1 when the caller no longer holds the lock (write nothing), the milliseconds
-- left when an earlier create of the record may still land (wait, then look it up again),
-- else 0 after marking this create in doubt for ARGV[2] ms.
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return -1
end
local left = redis.call('pttl', KEYS[2])
if left > 0 then
  return left
end
redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 0
