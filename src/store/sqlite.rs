//! The embedded store: one SQLite file.
//!
//! Several processes share the file at once (CLI commands, `meshctl serve`, a proxy that watches), so
//! everything that must be consistent lives in SQLite itself rather than in this process:
//!
//! - `store` holds the one store-wide revision counter and how far the event log has been compacted;
//! - `objects` holds each object's current JSON (with `metadata.resourceVersion`, `uid` and
//!   `creationTimestamp` already set), keyed by kind, namespace and name, so a list is one range scan
//!   of the primary key in the order the API promises;
//! - `events` holds one row per revision (ADDED, MODIFIED, DELETED, with the object's JSON at that
//!   revision), which is what watch replays and follows.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction that bumps the revision, writes the object row and
//! appends the event, so the three never disagree, even across processes. The file is in WAL mode with
//! `synchronous=FULL`: a commit returns only after the WAL is fsynced, so an acknowledged write survives
//! `kill -9` and power loss, and readers (lists, watches) never wait for writers.
//!
//! Watchers follow other processes' writes by polling the events table (a short interval; a poll is
//! one primary-key lookup when nothing changed), and wake at once for writes made through the same
//! [`SqliteStore`].

use std::collections::VecDeque;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params, params_from_iter};

use super::{Event, EventType, Listing, ObjectKey, Revision, Selector, Store, StoreError, Watch};
use crate::model::{Kind, Resource};

/// The schema this code reads and writes, kept in `PRAGMA user_version`. Bump it with a migration in
/// [`init_schema`] whenever the tables change; an older meshctl then refuses the file instead of
/// misreading it.
const SCHEMA_VERSION: i64 = 1;

/// `PRAGMA application_id`: marks the file as a meshctl store, so that pointing `--store` at some
/// other program's SQLite database is refused rather than written into. ("mshc" in ASCII.)
const APPLICATION_ID: i64 = 0x6d73_6863;

/// How long a statement waits for another connection's write lock before giving up. Writes hold the
/// lock for one short transaction (plus an fsync), so only a wedged process makes this run out.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a watch looks for writes made by other processes. Writes through the same `SqliteStore`
/// wake watchers at once; this bounds the delay for the others. A poll costs one read of the `store`
/// row, so 20 per second per watcher is cheap.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How many events a watch reads per query: bounds its memory when it replays a long log.
const WATCH_BATCH: i64 = 256;

/// Events kept by default for watches to resume from (see [`SqliteStore::with_event_retention`]).
pub const DEFAULT_EVENT_RETENTION: u64 = 10_000;

/// Idle read connections kept for reuse. More concurrent readers than this still work; the extra
/// connections are closed after use.
const MAX_IDLE_READERS: usize = 16;

const SCHEMA: &str = "
CREATE TABLE store (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    revision INTEGER NOT NULL,   -- the store-wide revision: bumped by every write
    compacted INTEGER NOT NULL   -- events up to and including this revision are deleted
);
INSERT INTO store (id, revision, compacted) VALUES (0, 0, 0);
CREATE TABLE objects (
    kind TEXT NOT NULL,          -- the kind field's value: EgressRule
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,   -- of the object's last change (its resourceVersion)
    uid TEXT NOT NULL,
    created TEXT NOT NULL,       -- creationTimestamp
    body TEXT NOT NULL,          -- the object as JSON, metadata complete
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE events (
    revision INTEGER PRIMARY KEY,
    type TEXT NOT NULL,          -- ADDED, MODIFIED, DELETED
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL           -- the object at this revision (for DELETED: as it was)
);
";

/// The embedded config store: one SQLite file, shared safely by any number of processes and threads.
///
/// Writes go through one connection behind a mutex (SQLite allows one writer at a time anyway, and
/// queueing on a mutex is much cheaper than queueing on SQLite's busy handler, which sleeps); reads
/// take a connection from a small pool, so concurrent gets and lists run in parallel and never wait
/// for a write.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    notifier: Arc<Notifier>,
    retention: u64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating it (and its parent directories) on first use. The
    /// directories are created with mode 0700 and the file with 0600: rules can name internal hosts
    /// and the store is per user. A file that is not a meshctl store (garbage, another program's
    /// database, a newer schema) is refused with `Unavailable` naming the file.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        create_file(path)?;
        let conn = connect(path)?;
        init_schema(&conn, path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            notifier: Arc::new(Notifier::default()),
            retention: DEFAULT_EVENT_RETENTION,
        })
    }

    /// Keeps at least the last `events` events (at least 1) for watches to resume from; older ones
    /// are deleted now and then by writes, and a watch from before them gets `Compacted`.
    pub fn with_event_retention(mut self, events: u64) -> SqliteStore {
        self.retention = events.max(1);
        self
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn unavailable(&self, e: rusqlite::Error) -> StoreError {
        sql_error(&self.path, e)
    }

    /// The write connection, with no transaction left open. A thread that panicked mid-write poisons
    /// the mutex; the connection is still sound (SQLite rolls back what was not committed), so it is
    /// reused after rolling back.
    fn writer(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(|e| self.unavailable(e))?;
        }
        Ok(conn)
    }

    /// Runs `f` on a read connection: an idle one from the pool, else the write connection when no
    /// write is using it (a CLI command then opens the file once), else a new one.
    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                if let Ok(mut writer) = self.writer.try_lock() {
                    if writer.is_autocommit() {
                        return f(&mut writer).map_err(|e| self.unavailable(e));
                    }
                }
                connect(&self.path)?
            }
        };
        let result = f(&mut conn).map_err(|e| self.unavailable(e));
        if conn.is_autocommit() {
            let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }

    fn check(&self, object: &Resource) -> Result<(), StoreError> {
        super::check_write(object)
    }

    /// Runs one write (the object already validated): `f` inside a `BEGIN IMMEDIATE` transaction,
    /// given the revision this write will have, then bumps the revision, appends the event `f` returns,
    /// compacts the log when due, and commits (durably). Watchers in this process are woken after the
    /// commit.
    fn write(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, Revision) -> Result<Written, StoreError>,
    ) -> Result<Resource, StoreError> {
        let mut conn = self.writer()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.unavailable(e))?;
        let (current, compacted) = read_counters(&tx).map_err(|e| self.unavailable(e))?;
        let revision = current + 1;
        let written = f(&tx, revision)?;
        let key = &written.key;
        let event = written.event;
        let result = (|| {
            tx.prepare_cached(
                "INSERT INTO events (revision, type, kind, namespace, name, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                to_sql(revision),
                event_type_name(event),
                key.kind.name(),
                key.namespace,
                key.name,
                written.body
            ])?;
            // Compaction runs once per `slack` writes rather than on every write, deleting a batch.
            let slack = (self.retention / 8).max(1);
            let mut new_compacted = compacted;
            if revision.saturating_sub(compacted) > self.retention + slack {
                new_compacted = revision - self.retention;
                tx.prepare_cached("DELETE FROM events WHERE revision <= ?1")?
                    .execute([to_sql(new_compacted)])?;
            }
            tx.prepare_cached("UPDATE store SET revision = ?1, compacted = ?2 WHERE id = 0")?
                .execute([to_sql(revision), to_sql(new_compacted)])?;
            Ok(())
        })();
        result.map_err(|e| self.unavailable(e))?;
        tx.commit().map_err(|e| self.unavailable(e))?;
        drop(conn);
        self.notifier.bump();
        Ok(written.object)
    }
}

/// What a write's body produced: the key, the event, its JSON, and the object to return.
struct Written {
    key: ObjectKey,
    event: EventType,
    /// The event's object as JSON.
    body: String,
    /// What the caller gets back (for create and update, equal to what a later `get` returns).
    object: Resource,
}

impl Store for SqliteStore {
    fn get(&self, key: &ObjectKey) -> Result<Resource, StoreError> {
        let body = self.read(|conn| {
            conn.prepare_cached("SELECT body FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3")?
                .query_row(params![key.kind.name(), key.namespace, key.name], |row| {
                    row.get::<_, String>(0)
                })
                .optional()
        })?;
        match body {
            Some(body) => decode(&self.path, key.kind, &body),
            None => Err(StoreError::NotFound(key.clone())),
        }
    }

    fn list(&self, selector: &Selector) -> Result<Listing, StoreError> {
        // Only the conditions the selector needs, so each query is a range scan of the primary key
        // (kind first) or, without a kind, a scan SQLite plans on its own.
        let mut sql = String::from("SELECT kind, body FROM objects");
        let mut args: Vec<Value> = Vec::new();
        if let Some(kind) = selector.kind {
            args.push(Value::Text(kind.name().to_string()));
            sql.push_str(" WHERE kind = ?1");
        }
        if let Some(ns) = &selector.namespace {
            args.push(Value::Text(ns.clone()));
            sql.push_str(if args.len() == 1 { " WHERE" } else { " AND" });
            sql.push_str(&format!(" namespace = ?{}", args.len()));
        }
        sql.push_str(" ORDER BY kind, namespace, name");
        let path = &self.path;
        let (chunks, revision) = self.read(|conn| {
            // Decoding JSON into the typed model is most of a large list's cost (about 1 µs per
            // object, several times what SQLite takes to read the row), so every DECODE_CHUNK rows
            // go to the thread pool to be decoded while this thread reads on: the reading and the
            // decoding overlap. A list shorter than one chunk is decoded here, with no threads.
            let (send, receive) = std::sync::mpsc::channel();
            let mut chunks = 0;
            let revision = rayon::in_place_scope(|scope| -> rusqlite::Result<Revision> {
                // One read transaction: the revision is the one the rows were read at. It ends
                // as soon as the rows are read, before the decoding does.
                let tx = conn.transaction()?;
                let (revision, _) = read_counters(&tx)?;
                let mut rows = Rows::default();
                {
                    let mut stmt = tx.prepare_cached(&sql)?;
                    let mut cursor = stmt.query(params_from_iter(args))?;
                    while let Some(row) = cursor.next()? {
                        rows.push(row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?);
                        if rows.len() == DECODE_CHUNK {
                            let chunk = std::mem::take(&mut rows);
                            let (send, index) = (send.clone(), chunks);
                            chunks += 1;
                            // The receiver outlives the scope, so the send cannot fail.
                            scope.spawn(move |_| drop(send.send((index, chunk.decode(path)))));
                        }
                    }
                }
                tx.commit()?;
                if !rows.is_empty() {
                    let _ = send.send((chunks, rows.decode(path)));
                    chunks += 1;
                }
                Ok(revision)
            })?;
            drop(send);
            let mut decoded: Vec<_> = receive.into_iter().collect();
            debug_assert_eq!(decoded.len(), chunks);
            decoded.sort_unstable_by_key(|(index, _)| *index);
            Ok((decoded, revision))
        })?;
        let mut items = Vec::with_capacity(chunks.iter().map(|(_, c)| c.as_ref().map_or(0, Vec::len)).sum());
        for (_, chunk) in chunks {
            items.append(&mut chunk?);
        }
        Ok(Listing { items, revision })
    }

    fn create(&self, object: &Resource) -> Result<Resource, StoreError> {
        self.check(object)?;
        let key = ObjectKey::of(object);
        self.write(|tx, revision| {
            let exists = tx
                .prepare_cached("SELECT 1 FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3")
                .and_then(|mut s| s.exists(params![key.kind.name(), key.namespace, key.name]))
                .map_err(|e| self.unavailable(e))?;
            if exists {
                return Err(StoreError::AlreadyExists(key.clone()));
            }
            let uid = uuid::Uuid::new_v4().to_string();
            let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
            let (body, stored) = self.stamp(object, &key, revision, &uid, &created)?;
            tx.prepare_cached(
                "INSERT INTO objects (kind, namespace, name, revision, uid, created, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key.kind.name(),
                    key.namespace,
                    key.name,
                    to_sql(revision),
                    uid,
                    created,
                    body
                ])
            })
            .map_err(|e| self.unavailable(e))?;
            Ok(Written {
                key: key.clone(),
                event: EventType::Added,
                body,
                object: stored,
            })
        })
    }

    fn update(&self, object: &Resource) -> Result<Resource, StoreError> {
        self.check(object)?;
        let key = ObjectKey::of(object);
        self.write(|tx, revision| {
            let current = tx
                .prepare_cached(
                    "SELECT revision, uid, created FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(params![key.kind.name(), key.namespace, key.name], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    })
                    .optional()
                })
                .map_err(|e| self.unavailable(e))?;
            let Some((current, uid, created)) = current else {
                return Err(StoreError::NotFound(key.clone()));
            };
            // An empty resourceVersion is "none", as in Kubernetes: an unconditional replace.
            if let Some(sent) = object.metadata.resource_version.as_deref().filter(|v| !v.is_empty()) {
                if sent != current.to_string() {
                    return Err(StoreError::Conflict {
                        key: key.clone(),
                        sent: sent.to_string(),
                        current: current.to_string(),
                    });
                }
            }
            let (body, stored) = self.stamp(object, &key, revision, &uid, &created)?;
            tx.prepare_cached(
                "UPDATE objects SET revision = ?4, body = ?5 WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key.kind.name(),
                    key.namespace,
                    key.name,
                    to_sql(revision),
                    body
                ])
            })
            .map_err(|e| self.unavailable(e))?;
            Ok(Written {
                key: key.clone(),
                event: EventType::Modified,
                body,
                object: stored,
            })
        })
    }

    fn delete(&self, key: &ObjectKey) -> Result<Resource, StoreError> {
        self.write(|tx, revision| {
            let body = tx
                .prepare_cached("SELECT body FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3")
                .and_then(|mut s| {
                    s.query_row(params![key.kind.name(), key.namespace, key.name], |row| {
                        row.get::<_, String>(0)
                    })
                    .optional()
                })
                .map_err(|e| self.unavailable(e))?;
            let Some(body) = body else {
                return Err(StoreError::NotFound(key.clone()));
            };
            // The deleted object carries the deletion's revision, as Kubernetes does in both the DELETE
            // answer and the DELETED event: a watch from it starts after the deletion.
            let mut object = decode(&self.path, key.kind, &body)?;
            object.metadata.resource_version = Some(revision.to_string());
            let body = encode(&self.path, &object)?;
            tx.prepare_cached("DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3")
                .and_then(|mut s| s.execute(params![key.kind.name(), key.namespace, key.name]))
                .map_err(|e| self.unavailable(e))?;
            Ok(Written {
                key: key.clone(),
                event: EventType::Deleted,
                body,
                object,
            })
        })
    }

    fn watch(&self, selector: &Selector, after: Revision) -> Result<Box<dyn Watch>, StoreError> {
        // Its own connection: a watch lives long and reads on its own schedule, and must not hold a
        // pooled connection (or the writer) while it waits.
        let conn = connect(&self.path)?;
        let (_, compacted) = read_counters(&conn).map_err(|e| self.unavailable(e))?;
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: compacted,
            });
        }
        Ok(Box::new(SqliteWatch {
            conn,
            path: self.path.clone(),
            selector: selector.clone(),
            cursor: after,
            pending: VecDeque::new(),
            notifier: self.notifier.clone(),
        }))
    }

    fn revision(&self) -> Result<Revision, StoreError> {
        self.read(|conn| read_counters(conn).map(|(revision, _)| revision))
    }
}

impl SqliteStore {
    /// The object as stored at `revision`: namespace explicit, the store's metadata set (whatever the
    /// caller sent for them is replaced). Returns its JSON and the object decoded back from that JSON,
    /// so what a write returns is exactly what a later `get` returns (serialising is not quite
    /// injective: a NaN becomes null, for one).
    fn stamp(
        &self,
        object: &Resource,
        key: &ObjectKey,
        revision: Revision,
        uid: &str,
        created: &str,
    ) -> Result<(String, Resource), StoreError> {
        let mut stored = object.clone();
        let m = &mut stored.metadata;
        m.namespace = Some(key.namespace.clone());
        m.resource_version = Some(revision.to_string());
        m.uid = Some(uid.to_string());
        m.creation_timestamp = Some(created.to_string());
        let body = encode(&self.path, &stored)?;
        let stored = decode(&self.path, key.kind, &body)?;
        Ok((body, stored))
    }
}

/// One watcher: replays the kept events after its cursor that match its selector, then follows new
/// ones. It reads through its own connection, so it needs nothing from the store that made it and
/// keeps working after that store is dropped.
struct SqliteWatch {
    conn: Connection,
    path: PathBuf,
    selector: Selector,
    /// Every event up to here has been read (and, when it matched, queued or returned).
    cursor: Revision,
    pending: VecDeque<Event>,
    notifier: Arc<Notifier>,
}

impl Watch for SqliteWatch {
    fn next(&mut self, timeout: Duration) -> Result<Option<Event>, StoreError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            // Taken before reading, so a write that commits after the read still wakes the wait below.
            let seen = self.notifier.generation();
            self.fetch()?;
            if !self.pending.is_empty() {
                continue;
            }
            let wait = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    left.min(POLL_INTERVAL)
                }
                None => POLL_INTERVAL,
            };
            self.notifier.wait(seen, wait);
        }
    }
}

impl SqliteWatch {
    /// Reads the next batch of events after the cursor into `pending`, in one read transaction with
    /// the counters, so compaction cannot remove events between the check and the read.
    fn fetch(&mut self) -> Result<(), StoreError> {
        let path = &self.path;
        let cursor = self.cursor;
        let selector = &self.selector;
        // Appended to `pending` only when the whole batch was read, so a failure part-way cannot
        // queue events that the next call would read again.
        let mut batch = Vec::new();
        let mut failure = None;
        let result = (|| -> rusqlite::Result<Revision> {
            let tx = self.conn.transaction()?;
            let (revision, compacted) = read_counters(&tx)?;
            if compacted > cursor {
                // The watcher fell so far behind that events it has not seen were compacted away.
                failure = Some(StoreError::Compacted {
                    requested: cursor,
                    oldest: compacted,
                });
                return Ok(cursor);
            }
            if revision <= cursor {
                return Ok(cursor);
            }
            let mut sql =
                String::from("SELECT revision, type, kind, body FROM events WHERE revision > ?1 AND revision <= ?2");
            let mut args = vec![Value::Integer(to_sql(cursor)), Value::Integer(to_sql(revision))];
            if let Some(kind) = selector.kind {
                args.push(Value::Text(kind.name().to_string()));
                sql.push_str(&format!(" AND kind = ?{}", args.len()));
            }
            if let Some(ns) = &selector.namespace {
                args.push(Value::Text(ns.clone()));
                sql.push_str(&format!(" AND namespace = ?{}", args.len()));
            }
            sql.push_str(&format!(" ORDER BY revision LIMIT {WATCH_BATCH}"));
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut count = 0;
            let mut last = cursor;
            while let Some(row) = rows.next()? {
                count += 1;
                last = from_sql(row.get(0)?);
                let event = row_to_event(
                    path,
                    last,
                    row.get_ref(1)?.as_str()?,
                    row.get_ref(2)?.as_str()?,
                    row.get_ref(3)?.as_str()?,
                );
                match event {
                    Ok(e) => batch.push(e),
                    Err(e) => {
                        failure = Some(e);
                        return Ok(cursor);
                    }
                }
            }
            drop(rows);
            drop(stmt);
            tx.commit()?;
            // A full batch may have more behind it; otherwise every event up to `revision` was read.
            Ok(if count == WATCH_BATCH { last } else { revision })
        })();
        let next = result.map_err(|e| sql_error(path, e))?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.cursor = next;
        self.pending.extend(batch);
        Ok(())
    }
}

/// A chunk of a list's rows, copied out of SQLite so that it can be decoded on another thread while
/// the next chunk is read. One buffer for all bodies rather than a `String` each: one allocation
/// instead of hundreds.
#[derive(Default)]
struct Rows {
    text: String,
    /// Each row's kind name (as stored) and where its body ends in `text`.
    rows: Vec<(Result<Kind, String>, usize)>,
}

/// How many rows a list hands to the thread pool at a time to decode (see `list`).
const DECODE_CHUNK: usize = 256;

impl Rows {
    fn push(&mut self, kind: &str, body: &str) {
        let kind = Kind::from_kind_field(kind).ok_or_else(|| kind.to_string());
        self.text.push_str(body);
        self.rows.push((kind, self.text.len()));
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Decodes the rows, in order.
    fn decode(self, path: &Path) -> Result<Vec<Resource>, StoreError> {
        let mut start = 0;
        let mut items = Vec::with_capacity(self.rows.len());
        for (kind, end) in &self.rows {
            let body = self.text.get(start..*end).unwrap_or_default();
            start = *end;
            items.push(match kind {
                Ok(kind) => decode(path, *kind, body)?,
                Err(name) => return Err(corrupt(path, format!("unknown kind `{name}` in the objects table"))),
            });
        }
        Ok(items)
    }
}

/// Wakes this process's watchers when a write through the same store commits, so they need not wait
/// for their next poll. A generation counter rather than a bare condvar: a watcher that was busy
/// reading when the write committed sees the counter moved and does not go to sleep.
#[derive(Default)]
struct Notifier {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Notifier {
    fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        let mut g = self.generation.lock().unwrap_or_else(PoisonError::into_inner);
        *g = g.wrapping_add(1);
        self.changed.notify_all();
    }

    /// Waits until the generation is no longer `seen`, or `timeout` passes.
    fn wait(&self, seen: u64, timeout: Duration) {
        let g = self.generation.lock().unwrap_or_else(PoisonError::into_inner);
        let _unused = self
            .changed
            .wait_timeout_while(g, timeout, |g| *g == seen)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// Creates the parent directories (0700) and the file (0600) when they do not exist yet, so SQLite
/// never creates the file with the process umask's looser mode. SQLite gives its `-wal` and `-shm`
/// files the database file's mode. An existing file's mode is left alone: the user may have chosen it.
fn create_file(path: &Path) -> Result<(), StoreError> {
    let fail = |what: &str, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot {what} the store {}: {e}", path.display()))
    };
    if path.exists() {
        return Ok(());
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| fail("create the directory of", e))?;
    }
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(file) => {
            file.sync_all().map_err(|e| fail("create", e))?;
            // The new directory entry must be durable too, or a power loss right after the first
            // acknowledged write could lose the whole file. Some file systems cannot fsync a
            // directory; there is nothing better to do there, so that failure is ignored.
            if let Ok(dir) = File::open(parent.unwrap_or(Path::new("."))) {
                let _ignored = dir.sync_all();
            }
            Ok(())
        }
        // Another process created it first: fine, it is the same store.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail("create", e)),
    }
}

/// Opens one connection to an existing store file, set up for durability and sharing: WAL (readers
/// and the writer do not block each other), `synchronous=FULL` (every commit fsyncs the WAL: an
/// acknowledged write survives power loss; NORMAL would only survive a crash of the process), and a
/// busy timeout (other processes write the same file).
fn connect(path: &Path) -> Result<Connection, StoreError> {
    // No SQLITE_OPEN_CREATE: `create_file` made the file; if it has vanished since, an error is
    // better than a fresh empty store.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| sql_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| sql_error(path, e))?;
    // The first statement that reads the file: garbage fails here with "file is not a database".
    // Setting WAL is persistent and a no-op when it already is; it is the one pragma that answers
    // with the mode in force, which is checked, since SQLite silently keeps another mode when it
    // cannot switch (a read-only file, say).
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| sql_error(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "cannot open the store {}: it cannot be switched to WAL mode (journal mode is {mode}); is the file or its directory read-only?",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(|e| sql_error(path, e))?;
    Ok(conn)
}

/// Creates the tables in a new file, and refuses files this code must not touch: a newer schema,
/// or a database that is not a meshctl store.
fn init_schema(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let refuse = |why: String| StoreError::Unavailable(format!("cannot open the store {}: {why}", path.display()));
    let sql = |e| sql_error(path, e);
    let read_version = || -> rusqlite::Result<(i64, i64, i64)> {
        let version = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let app = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let tables = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        Ok((version, app, tables))
    };
    let check = |(version, app, tables): (i64, i64, i64)| -> Result<bool, StoreError> {
        if version == 0 && tables == 0 {
            return Ok(true); // a new file
        }
        if app != APPLICATION_ID || version == 0 {
            return Err(refuse(
                "it is an SQLite database, but not a meshctl store; point --store at another file".to_string(),
            ));
        }
        if version > SCHEMA_VERSION {
            return Err(refuse(format!(
                "it was written by a newer meshctl (store schema version {version}; this meshctl reads up to {SCHEMA_VERSION}); upgrade meshctl"
            )));
        }
        Ok(false)
    };
    if !check(read_version().map_err(sql)?)? {
        return Ok(());
    }
    // Create the tables under the write lock, checking again: another process may have done it
    // between the first check and the lock.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
    let created = (|| {
        if check(read_version().map_err(sql)?)? {
            conn.execute_batch(SCHEMA).map_err(sql)?;
            conn.execute_batch(&format!(
                "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
            ))
            .map_err(sql)?;
        }
        conn.execute_batch("COMMIT").map_err(sql)
    })();
    if created.is_err() && !conn.is_autocommit() {
        let _ignored = conn.execute_batch("ROLLBACK");
    }
    created
}

/// The current revision and how far the event log is compacted.
fn read_counters(conn: &Connection) -> rusqlite::Result<(Revision, Revision)> {
    conn.prepare_cached("SELECT revision, compacted FROM store WHERE id = 0")?
        .query_row([], |row| Ok((from_sql(row.get(0)?), from_sql(row.get(1)?))))
}

/// Revisions are u64 in the API and i64 in SQLite; they start at 0 and grow by one per write, so
/// they never come near the top of either.
fn to_sql(revision: Revision) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> Revision {
    Revision::try_from(value).unwrap_or(0)
}

fn event_type_name(event: EventType) -> &'static str {
    match event {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        EventType::Deleted => "DELETED",
    }
}

fn row_to_event(path: &Path, revision: Revision, event: &str, kind: &str, body: &str) -> Result<Event, StoreError> {
    let event = match event {
        "ADDED" => EventType::Added,
        "MODIFIED" => EventType::Modified,
        "DELETED" => EventType::Deleted,
        other => {
            return Err(corrupt(
                path,
                format!("unknown event type `{other}` at revision {revision}"),
            ));
        }
    };
    let kind = Kind::from_kind_field(kind)
        .ok_or_else(|| corrupt(path, format!("unknown kind `{kind}` at revision {revision}")))?;
    Ok(Event {
        kind: event,
        revision,
        object: decode(path, kind, body)?,
    })
}

/// Any SQLite failure: the store cannot be used (exit status 2, HTTP 503 or 500), named by its file.
fn sql_error(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            format!(
                " (another process held the store's lock for more than {}s)",
                BUSY_TIMEOUT.as_secs()
            )
        }
        Some(ErrorCode::NotADatabase) => " (it is not a meshctl store, or it is damaged)".to_string(),
        Some(ErrorCode::DatabaseCorrupt) => " (the file is damaged)".to_string(),
        _ => String::new(),
    };
    StoreError::Unavailable(format!("store {}: {e}{hint}", path.display()))
}

fn corrupt(path: &Path, what: String) -> StoreError {
    StoreError::Unavailable(format!("store {} is damaged: {what}", path.display()))
}

fn decode(path: &Path, kind: Kind, body: &str) -> Result<Resource, StoreError> {
    Resource::from_json(kind, body).map_err(|e| corrupt(path, format!("a stored {kind} cannot be read: {e}")))
}

fn encode(path: &Path, object: &Resource) -> Result<String, StoreError> {
    serde_json::to_string(object).map_err(|e| {
        StoreError::Unavailable(format!(
            "store {}: cannot encode {}: {e}",
            path.display(),
            object.istioctl_ref()
        ))
    })
}
