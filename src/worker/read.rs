//! Reading and claiming jobs through a Lua script, so that no entry larger
//! than the field limit ever leaves Redis.
//!
//! Why a script: `XREADGROUP` and `XAUTOCLAIM` return whole entries, even
//! with `COUNT 1`, and Redis has no command that tells an entry's size
//! before reading it. A producer's 200 MB entry would be copied into the
//! worker (and again into the dead letter), and every worker reading it
//! would run out of memory, again on each redelivery. The script runs the
//! same commands inside Redis, one entry at a time (so that Redis too holds
//! one big entry at a time, not a batch of them), and replaces every field
//! name or value over the limit with a short placeholder holding its length
//! and SHA-1 before replying. The worker then sees the entry's shape,
//! refuses the job, and dead-letters the placeholders, never the bytes.
//!
//! One script call reads up to a whole batch (hundreds of entries), so the
//! normal path costs one round trip per batch, as the plain commands did.
//! `BLOCK` is not allowed inside a script: when a read finds nothing, the
//! reader polls again after a short delay that grows while the stream stays
//! empty (see `run.rs`).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, RedisError, Value};

use super::job::MAX_FIELD_BYTES;
use super::queue::{text, Fields};

/// The most field pairs of an entry the script returns; a job has at most
/// 11 fields, so an entry with more is bad whatever they hold.
pub(crate) const MAX_FIELDS: usize = 32;

/// The most bytes of names and values one entry keeps (the rest become
/// placeholders): a full 64 KiB payload and every other field fit.
pub(crate) const MAX_ENTRY_BYTES: usize = 4 * MAX_FIELD_BYTES;

/// KEYS[1]: the jobs stream. ARGV: mode (`read` or `claim`), group,
/// consumer, count, from (`>`, an id, or the claim cursor), the field
/// limit, the most field pairs, the entry budget, min-idle ms (claims).
///
/// Reply: `{cursor, deleted, entries}`, each entry `{id, fields or false,
/// replaced, field count}` where `replaced` lists `index, length` of each
/// name or value replaced (1-based in the flat field list).
const SCRIPT: &str = r#"
local mode, group, consumer = ARGV[1], ARGV[2], ARGV[3]
local count, from = tonumber(ARGV[4]), ARGV[5]
local limit, max_fields, budget = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local function shrink(e)
  local f = e[2]
  if type(f) ~= 'table' then return {e[1], false, {}, 0} end
  local out, replaced, kept = {}, {}, 0
  local n = math.min(#f, 2 * max_fields)
  for i = 1, n do
    local v = f[i]
    if #v > limit or kept + #v > budget then
      out[i] = 'oversized: ' .. #v .. ' bytes, sha1 ' .. redis.sha1hex(v)
      replaced[#replaced + 1] = i
      replaced[#replaced + 1] = #v
    else
      out[i] = v
      kept = kept + #v
    end
  end
  return {e[1], out, replaced, #f}
end
local entries, deleted, cursor = {}, 0, ''
if mode == 'read' then
  for _ = 1, count do
    local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1,
      'STREAMS', KEYS[1], from)
    if not r then break end
    local got = r[1][2]
    if #got == 0 then break end
    entries[#entries + 1] = shrink(got[1])
    if from ~= '>' then from = got[1][1] end
    got, r = nil, nil
  end
else
  cursor = from
  -- At most `count` calls: each scans up to 10 pending entries.
  for _ = 1, count do
    local r = redis.call('XAUTOCLAIM', KEYS[1], group, consumer, ARGV[9], cursor,
      'COUNT', 1)
    cursor = r[1]
    for _, e in ipairs(r[2]) do entries[#entries + 1] = shrink(e) end
    if r[3] then deleted = deleted + #r[3] end
    r = nil
    if cursor == '0-0' or #entries >= count then break end
  end
end
return {cursor, deleted, entries}
"#;

/// The script's SHA-1, for `EVALSHA`.
fn sha() -> &'static str {
    static SHA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SHA.get_or_init(|| {
        let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, SCRIPT.as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// A name or value the script replaced by a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replaced {
    /// Index in the flat list of names and values (even: a name).
    pub index: usize,
    /// Its length in Redis.
    pub len: u64,
}

/// A stream entry; `fields` is `None` for an entry deleted from the stream
/// while it was pending.
#[derive(Debug)]
pub(crate) struct Entry {
    pub id: String,
    pub fields: Option<Fields>,
    /// What is not the entry's own bytes: replaced names and values, and
    /// how many fields it had.
    pub shape: Shape,
}

/// How an entry read differs from the entry in Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    pub replaced: Vec<Replaced>,
    /// The entry's field count in Redis (names and values); more than
    /// `2 * MAX_FIELDS` means the rest were left out.
    pub flat_len: usize,
}

impl Shape {
    /// Why the entry cannot be a job, if the script had to change it.
    pub fn problem(&self, fields: &Fields) -> Option<String> {
        if self.flat_len > 2 * MAX_FIELDS {
            return Some(format!(
                "the entry has {} fields, more than the {MAX_FIELDS} read (a job has at most 11)",
                self.flat_len / 2
            ));
        }
        let r = self.replaced.first()?;
        let pair = fields.get(r.index / 2);
        let name = pair
            .filter(|_| r.index % 2 == 1)
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned());
        let what = match name {
            Some(n) => format!("the field {:?}", super::job::excerpt(&n, 40)),
            None => "a field name".to_string(),
        };
        Some(if r.len as usize > MAX_FIELD_BYTES {
            format!(
                "{what} is {} bytes long, over the {MAX_FIELD_BYTES}-byte limit (kept as a placeholder with its length and SHA-1)",
                r.len
            )
        } else {
            format!(
                "{what} takes the entry over {MAX_ENTRY_BYTES} bytes (kept as a placeholder with its length and SHA-1)"
            )
        })
    }

    /// Whether the name or value at `index` is a placeholder.
    pub fn is_replaced(&self, index: usize) -> bool {
        self.replaced.iter().any(|r| r.index == index)
    }
}

/// What one read or claim returned.
pub(crate) struct Batch {
    /// The claim cursor (empty for reads).
    pub cursor: String,
    pub entries: Vec<Entry>,
    /// Claims: entries pending but no longer in the stream (Redis 7 drops
    /// them from the pending list itself).
    pub deleted: usize,
}

fn unexpected(what: &str) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        what.to_string(),
    ))
}

fn items(v: Value) -> std::result::Result<Vec<Value>, RedisError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        _ => Err(unexpected("expected an array")),
    }
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> u64 {
    v.and_then(text).and_then(|t| t.parse().ok()).unwrap_or(0)
}

/// The script's reply.
fn batch(v: Value) -> std::result::Result<Batch, RedisError> {
    let mut parts = items(v)?.into_iter();
    let cursor = parts.next().as_ref().and_then(text).unwrap_or_default();
    let deleted = number(parts.next().as_ref()) as usize;
    let mut entries = Vec::new();
    for e in items(parts.next().unwrap_or(Value::Nil))? {
        let mut p = items(e)?.into_iter();
        let id = p
            .next()
            .as_ref()
            .and_then(text)
            .ok_or_else(|| unexpected("an entry without an id"))?;
        let fields = match p.next() {
            None | Some(Value::Nil) | Some(Value::Boolean(false)) => None,
            Some(list) => {
                let flat = items(list)?;
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                let mut it = flat.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((
                        bytes(k).ok_or_else(|| unexpected("a field name"))?,
                        bytes(v).ok_or_else(|| unexpected("a field value"))?,
                    ));
                }
                Some(pairs)
            }
        };
        let flat: Vec<Value> = items(p.next().unwrap_or(Value::Nil))?;
        let replaced = flat
            .chunks(2)
            .map(|c| Replaced {
                // Lua's 1-based index, made 0-based.
                index: (number(c.first()) as usize).saturating_sub(1),
                len: number(c.get(1)),
            })
            .collect();
        let flat_len = number(p.next().as_ref()) as usize;
        entries.push(Entry {
            id,
            fields,
            shape: Shape { replaced, flat_len },
        });
    }
    Ok(Batch {
        cursor,
        entries,
        deleted,
    })
}

/// Runs the script (`EVALSHA`, loading it with `EVAL` when Redis does not
/// have it: after a restart, say).
async fn invoke(
    c: &mut MultiplexedConnection,
    stream: &str,
    args: &[String],
) -> std::result::Result<Batch, RedisError> {
    let r: std::result::Result<Value, RedisError> = redis::cmd("EVALSHA")
        .arg(sha())
        .arg(1)
        .arg(stream)
        .arg(args)
        .query_async(c)
        .await;
    let v = match r {
        Err(e) if e.code() == Some("NOSCRIPT") => {
            redis::cmd("EVAL")
                .arg(SCRIPT)
                .arg(1)
                .arg(stream)
                .arg(args)
                .query_async(c)
                .await?
        }
        other => other?,
    };
    batch(v)
}

fn limits() -> [String; 3] {
    [
        MAX_FIELD_BYTES.to_string(),
        MAX_FIELDS.to_string(),
        MAX_ENTRY_BYTES.to_string(),
    ]
}

/// `XREADGROUP GROUP group consumer COUNT 1 STREAMS stream from`, up to
/// `count` times in one script: new entries (`>`) or this consumer's own
/// pending ones after `from`. Never blocks.
pub(crate) async fn read_group(
    c: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
    consumer: &str,
    count: usize,
    from: &str,
) -> std::result::Result<Vec<Entry>, RedisError> {
    let [limit, fields, budget] = limits();
    let args = [
        "read".to_string(),
        group.to_string(),
        consumer.to_string(),
        count.max(1).to_string(),
        from.to_string(),
        limit,
        fields,
        budget,
    ];
    Ok(invoke(c, stream, &args).await?.entries)
}

/// `XAUTOCLAIM stream group consumer min-idle cursor COUNT 1`, up to
/// `count` times in one script.
pub(crate) async fn autoclaim(
    c: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
    consumer: &str,
    min_idle: Duration,
    cursor: &str,
    count: usize,
) -> std::result::Result<Batch, RedisError> {
    let [limit, fields, budget] = limits();
    let args = [
        "claim".to_string(),
        group.to_string(),
        consumer.to_string(),
        count.max(1).to_string(),
        cursor.to_string(),
        limit,
        fields,
        budget,
        (min_idle.as_millis() as u64).to_string(),
    ];
    let b = invoke(c, stream, &args).await?;
    if b.cursor.is_empty() {
        return Err(unexpected("a claim without a cursor"));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn replies_are_read_with_their_placeholders() {
        let reply = Value::Array(vec![
            b("0-0"),
            Value::Int(2),
            Value::Array(vec![
                Value::Array(vec![
                    b("1-0"),
                    Value::Array(vec![b("v"), b("1"), b("payload"), b("oversized: ...")]),
                    Value::Array(vec![Value::Int(4), Value::Int(70_000)]),
                    Value::Int(4),
                ]),
                Value::Array(vec![
                    b("2-0"),
                    Value::Nil,
                    Value::Array(vec![]),
                    Value::Int(0),
                ]),
            ]),
        ]);
        let got = batch(reply).unwrap();
        assert_eq!((got.cursor.as_str(), got.deleted), ("0-0", 2));
        let e = &got.entries[0];
        assert_eq!(
            e.shape.replaced,
            vec![Replaced {
                index: 3,
                len: 70_000
            }]
        );
        assert!(e.shape.is_replaced(3) && !e.shape.is_replaced(1));
        let why = e.shape.problem(e.fields.as_ref().unwrap()).unwrap();
        assert!(
            why.starts_with("the field \"payload\" is 70000 bytes long, over the 65536-byte limit"),
            "{why}"
        );
        assert!(got.entries[1].fields.is_none(), "a deleted entry");
        assert!(batch(Value::Int(3)).is_err());
    }

    #[test]
    fn the_script_hash_is_its_sha1() {
        assert_eq!(sha().len(), 40);
    }
}
