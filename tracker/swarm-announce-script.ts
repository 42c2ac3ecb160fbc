// One announce against a swarm kept in Redis, atomically (one round trip, consistent across
// trackers). Layout under <prefix>swarm:<infohash>:
//   :peers   hash  "ip:port" -> "zone|kind|peerId"       (kind: edge, seed or leech)
//   :seen    zset  "ip:port" scored by last announce (ms)  (expiry)
//   :t:<zone>:<kind>  set of "ip:port|peerId"              (random picks per tier: SRANDMEMBER)
//   :zones   set of zones with peers;  :meta  hash seeders, leechers, completed, and the times of
//            the last expiry pass and the last refresh of the keys' lifetimes
// and <prefix>swarms, a zset of swarms by last activity.
// Redis runs every script of every tracker one at a time, so the script does per announce only what
// must be per announce; expiry passes (at most every second) and lifetime refreshes (every half TTL)
// are done by whichever announce comes due.
// ARGV: prefix, infohash, member, peerId, zone, kind, event (or "count"), now, ttl, numwant, plan
// plan: "own:edge;own:seed;own:leech;other:edge,seed;other:leech" (best tier first).
export const ANNOUNCE_SCRIPT = `local prefix, infoHash, member, peerId, zone, kind, event =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local now, ttl, numwant, plan = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11]
local base = prefix .. 'swarm:' .. infoHash
local peersKey, seenKey, zonesKey, metaKey = base .. ':peers', base .. ':seen', base .. ':zones', base .. ':meta'
local keep = ttl * 4

local function tierKey(z, k)
  return base .. ':t:' .. z .. ':' .. k
end

local function counter(k)
  if k == 'leech' then return 'leechers' end
  return 'seeders'
end

local meta = redis.call('HMGET', metaKey, 'seeders', 'leechers', 'completed', 'expired', 'refreshed')
local counts = { seeders = tonumber(meta[1] or 0), leechers = tonumber(meta[2] or 0), completed = tonumber(meta[3] or 0) }

local function count(field, delta)
  redis.call('HINCRBY', metaKey, field, delta)
  counts[field] = counts[field] + delta
end

local function removePeer(m)
  local record = redis.call('HGET', peersKey, m)
  redis.call('ZREM', seenKey, m)
  if not record then return end
  local z, k, id = string.match(record, '^(.-)|(.-)|(.*)$')
  redis.call('SREM', tierKey(z, k), m .. '|' .. id)
  redis.call('HDEL', peersKey, m)
  count(counter(k), -1)
end

-- Expire peers that stopped announcing: at most once a second, in bounded batches.
if event == 'count' or now - tonumber(meta[4] or 0) >= 1000 then
  redis.call('HSET', metaKey, 'expired', now)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', seenKey, 0, now - ttl, 'LIMIT', 0, 500)) do
    removePeer(m)
  end
end

if event ~= 'count' then
  if event == 'stopped' then
    removePeer(member)
  else
    local record = redis.call('HGET', peersKey, member)
    local wanted = zone .. '|' .. kind .. '|' .. peerId
    if record ~= wanted then
      if record then removePeer(member) end
      redis.call('HSET', peersKey, member, wanted)
      redis.call('SADD', tierKey(zone, kind), member .. '|' .. peerId)
      redis.call('PEXPIRE', tierKey(zone, kind), keep)
      redis.call('SADD', zonesKey, zone)
      count(counter(kind), 1)
    end
    redis.call('ZADD', seenKey, now, member)
  end
  if event == 'completed' then count('completed', 1) end
  -- A live swarm's keys outlive their TTL: lifetimes are pushed back every half TTL.
  if now - tonumber(meta[5] or 0) >= ttl / 2 then
    redis.call('HSET', metaKey, 'refreshed', now)
    for _, key in ipairs({ peersKey, seenKey, zonesKey, metaKey }) do redis.call('PEXPIRE', key, keep) end
    for _, z in ipairs(redis.call('SMEMBERS', zonesKey)) do
      for _, k in ipairs({ 'edge', 'seed', 'leech' }) do redis.call('PEXPIRE', tierKey(z, k), keep) end
    end
    redis.call('ZADD', prefix .. 'swarms', now, infoHash)
  end
end

local chosen = {}
if numwant > 0 and plan ~= '' then
  local zones = redis.call('SMEMBERS', zonesKey)
  local own = member .. '|'
  for step in string.gmatch(plan, '[^;]+') do
    local scope, kinds = string.match(step, '^(%a+):(.*)$')
    for _, z in ipairs(zones) do
      if (z == zone) == (scope == 'own') then
        for k in string.gmatch(kinds, '[^,]+') do
          local need = numwant - #chosen
          if need > 0 then
            for _, pick in ipairs(redis.call('SRANDMEMBER', tierKey(z, k), need + 1)) do
              local mine = string.sub(pick, 1, #own) == own or string.sub(pick, -#peerId) == peerId
              if #chosen < numwant and not mine then table.insert(chosen, pick) end
            end
          end
        end
      end
    end
    if #chosen >= numwant then break end
  end
end

return { counts.seeders, counts.leechers, counts.completed, chosen }
`;
