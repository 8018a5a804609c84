-- cache.lua -- a long-lived LRU cache with steady churn: a large live heap
-- (the cache) that the collector must traverse on every cycle, while each
-- miss makes a new entry (a record table, a string, a small array) and
-- evicts the least recently used one.  This is where GC pauses hurt most.
--
-- Usage: lua cache.lua [requests]   (default 500000)
-- The cache holds CAPACITY = requests / 4 entries (at least 1000), about
-- 400 B of live objects each.
-- Self-check: hits + misses = requests; the list and the index agree on
-- every entry and on the count; each value still matches its key.

local N = tonumber(arg and arg[1]) or 500000
local CAPACITY = math.max(1000, N // 4)

local function fail(fmt, ...)
  error("cache: " .. string.format(fmt, ...))
end

-- A doubly linked list with a sentinel, most recent first.
local head = {}
head.next, head.prev = head, head
local index, count = {}, 0

local function unlink(e) e.prev.next, e.next.prev = e.next, e.prev end
local function push_front(e)
  local first = head.next -- head itself when the list is empty
  e.next, e.prev = first, head
  first.prev = e
  head.next = e
end

local function make_value(key)
  return { key = key, text = "value:" .. key, parts = { key % 7, key % 11, key % 13 } }
end

math.randomseed(42)
local hits, misses, evictions, hash = 0, 0, 0, 0
local keyspace = CAPACITY * 3
for r = 1, N do
  -- Skewed keys: a hot quarter of the key space gets half the requests.
  local key = math.random(2) == 1 and math.random(keyspace // 4) or math.random(keyspace)
  local e = index[key]
  if e then
    hits = hits + 1
    unlink(e)
    push_front(e)
  else
    misses = misses + 1
    e = { key = key, value = make_value(key) }
    index[key] = e
    count = count + 1
    push_front(e)
    if count > CAPACITY then
      local old = head.prev
      unlink(old)
      index[old.key] = nil
      count = count - 1
      evictions = evictions + 1
    end
  end
  local v = e.value
  if v.key ~= key or v.parts[2] ~= key % 11 then fail("request %d: wrong value for %d", r, key) end
  hash = (hash + #v.text + r % 7) % 1000000007
end

if hits + misses ~= N then fail("hits %d + misses %d ~= %d", hits, misses, N) end
local walked = 0
local e = head.next
while e ~= head do
  walked = walked + 1
  if index[e.key] ~= e then fail("list entry %d not indexed", e.key) end
  if e.next.prev ~= e then fail("broken list at %d", e.key) end
  e = e.next
end
local indexed = 0
for _ in pairs(index) do indexed = indexed + 1 end
if walked ~= count or indexed ~= count or count ~= math.min(CAPACITY, misses) then
  fail("count %d, walked %d, indexed %d", count, walked, indexed)
end
if misses - evictions ~= count then fail("misses - evictions ~= count") end

print(string.format("cache %d checksum %d %d %d", N, hits, misses, hash))
