
local allowed = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local oldest = tonumber(redis.call('lindex', KEYS[1], allowed - 1) or '')
if oldest ~= nil and now - oldest < window then return tostring(window - (now - oldest)) end
redis.call('lpush', KEYS[1], ARGV[3])
redis.call('ltrim', KEYS[1], 0, allowed - 1)
redis.call('expire', KEYS[1], 3600)
return '0'
