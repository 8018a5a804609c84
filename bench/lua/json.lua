-- json.lua -- a JSON-like encoder and decoder, round trip.  Encoding builds
-- strings piece by piece into buffers; decoding cuts the text into many
-- small strings and rebuilds nested tables of every size.
--
-- Usage: lua json.lua [documents]   (default 1600)
-- Self-check: decode(encode(doc)) is deeply equal to doc, and encoding the
-- decoded document gives the same text.

local N = tonumber(arg and arg[1]) or 1600

local function fail(fmt, ...)
  error("json: " .. string.format(fmt, ...))
end

-- Encoder ----------------------------------------------------------------
local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\t'] = '\\t' }
local encode_value

local function encode_string(s, out)
  out[#out + 1] = '"' .. s:gsub('[%c"\\]', escapes) .. '"'
end

local function is_array(t)
  local n = #t
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

function encode_value(v, out)
  local ty = type(v)
  if ty == "string" then encode_string(v, out)
  elseif ty == "number" then
    if math.type(v) == "integer" then
      out[#out + 1] = string.format("%d", v)
    else -- 17 digits round-trip; a float always shows a '.' or an exponent
      local f = string.format("%.17g", v)
      out[#out + 1] = f:find("[.eEn]") and f or f .. ".0"
    end
  elseif ty == "boolean" then out[#out + 1] = v and "true" or "false"
  elseif ty == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        encode_string(k, out)
        out[#out + 1] = ":"
        encode_value(v[k], out)
      end
      out[#out + 1] = "}"
    end
  else
    fail("cannot encode a %s", ty)
  end
end

local function encode(v)
  local out = {}
  encode_value(v, out)
  return table.concat(out)
end

-- Decoder ----------------------------------------------------------------
local unescapes = { ['"'] = '"', ['\\'] = '\\', n = '\n', t = '\t' }
local decode_value

local function skip(s, i) return s:find("[^ \n\t]", i) or #s + 1 end

local function decode_string(s, i) -- s[i] is the opening quote
  local j = i + 1
  local parts = {}
  while true do
    local k = s:find('["\\]', j)
    if not k then fail("unterminated string at %d", i) end
    parts[#parts + 1] = s:sub(j, k - 1)
    if s:sub(k, k) == '"' then return table.concat(parts), k + 1 end
    parts[#parts + 1] = unescapes[s:sub(k + 1, k + 1)] or fail("bad escape at %d", k)
    j = k + 2
  end
end

function decode_value(s, i)
  i = skip(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    local t = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "}" then return t, i + 1 end
    while true do
      local k
      k, i = decode_string(s, skip(s, i))
      i = skip(s, i)
      if s:sub(i, i) ~= ":" then fail("expected ':' at %d", i) end
      t[k], i = decode_value(s, i + 1)
      i = skip(s, i)
      c = s:sub(i, i)
      if c == "}" then return t, i + 1 end
      if c ~= "," then fail("expected ',' or '}' at %d", i) end
      i = i + 1
    end
  elseif c == "[" then
    local t = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "]" then return t, i + 1 end
    while true do
      t[#t + 1], i = decode_value(s, i)
      i = skip(s, i)
      c = s:sub(i, i)
      if c == "]" then return t, i + 1 end
      if c ~= "," then fail("expected ',' or ']' at %d", i) end
      i = i + 1
    end
  elseif c == '"' then
    return decode_string(s, i)
  elseif s:sub(i, i + 3) == "true" then return true, i + 4
  elseif s:sub(i, i + 4) == "false" then return false, i + 5
  else
    local num = s:match("^-?[%d.eE+-]+", i)
    if not num then fail("unexpected %q at %d", c, i) end
    local v = num:find("[.eE]") and tonumber(num) or math.tointeger(tonumber(num))
    if v == nil then fail("bad number %q at %d", num, i) end
    return v, i + #num
  end
end

local function decode(s)
  local v, i = decode_value(s, 1)
  if skip(s, i) <= #s then fail("trailing text at %d", i) end
  return v
end

-- Documents --------------------------------------------------------------
local function deep_equal(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    return a == b and math.type(a) == math.type(b)
  end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

math.randomseed(42)
local words = { "alpha", "beta", "gamma", "delta \"quoted\"", "tab\there",
                "line\nbreak", "back\\slash", "epsilon", "zeta", "eta" }

local function make_doc(depth)
  local r = math.random(depth > 0 and 6 or 4)
  if r == 1 then return math.random(-100000, 100000)
  elseif r == 2 then return math.random() * 1000
  elseif r == 3 then return words[math.random(#words)] .. math.random(999)
  elseif r == 4 then return math.random(2) == 1
  elseif r == 5 then
    local t = {}
    for i = 1, math.random(0, 8) do t[i] = make_doc(depth - 1) end
    return t
  else
    local t = {}
    for _ = 1, math.random(1, 8) do t["f" .. math.random(50)] = make_doc(depth - 1) end
    return t
  end
end

local bytes, hash = 0, 0
for d = 1, N do
  local doc = { id = d, items = {} }
  for i = 1, 20 do doc.items[i] = make_doc(4) end
  local text = encode(doc)
  local back = decode(text)
  if not deep_equal(doc, back) then fail("document %d: round trip differs", d) end
  local again = encode(back)
  if again ~= text then fail("document %d: re-encoding differs", d) end
  bytes = bytes + #text
  hash = (hash * 33 + #again + text:byte(#text // 2)) % 1000000007
end

print(string.format("json %d checksum %d %d", N, bytes, hash))
