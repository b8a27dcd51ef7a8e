-- The store's schema as released before schema versions (version 1), frozen: a database
-- written by that release is built from this file by the migration tests.
CREATE TABLE IF NOT EXISTS accounts (
    phone TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    recovery_locked_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS otp_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    phone TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    salt TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    resends INTEGER NOT NULL DEFAULT 0,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sms_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    to_number TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    kind TEXT NOT NULL DEFAULT 'message'
);
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    channel TEXT NOT NULL,
    locale TEXT NOT NULL,
    caller_masked TEXT,
    outcome TEXT,
    transfer_reason TEXT,
    intent TEXT,
    ticket_team TEXT,
    states TEXT NOT NULL DEFAULT '[]',
    error TEXT
);
CREATE TABLE IF NOT EXISTS turns (
    call_id TEXT NOT NULL REFERENCES calls(id),
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    ask TEXT NOT NULL,
    mode TEXT NOT NULL,
    heard TEXT,
    value TEXT,
    confidence REAL,
    latency_ms REAL,
    PRIMARY KEY (call_id, seq)
);
CREATE TABLE IF NOT EXISTS transcript (
    call_id TEXT NOT NULL REFERENCES calls(id),
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    speaker TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE TABLE IF NOT EXISTS agent_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'waiting',
    case_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    number TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    caller TEXT,
    call_id TEXT,
    locale TEXT NOT NULL,
    details_json TEXT NOT NULL,
    resolution TEXT
);
CREATE TABLE IF NOT EXISTS ticket_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    number TEXT NOT NULL REFERENCES tickets(number),
    at REAL NOT NULL,
    status TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT,
    created_at REAL NOT NULL,
    locale TEXT NOT NULL,
    caller TEXT,
    category TEXT NOT NULL,
    queue TEXT NOT NULL,
    transcript TEXT NOT NULL,
    audio_path TEXT,
    seconds REAL NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0
);
-- the agent desk (ivr/agents, ivr/desk): accounts, sessions, the work on each queued case
CREATE TABLE IF NOT EXISTS agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT,
    sip_uri TEXT,
    languages TEXT NOT NULL DEFAULT '[]',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'away',
    state_since REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS agent_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS desk_sessions (
    id_hash TEXT PRIMARY KEY,
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS case_work (
    queue_id INTEGER PRIMARY KEY REFERENCES agent_queue(id),
    caller_number TEXT,
    assigned_to INTEGER REFERENCES agents(id),
    claimed_by INTEGER REFERENCES agents(id),
    claimed_at REAL,
    resolved_at REAL,
    outcome TEXT,
    ticket_number TEXT
);
CREATE TABLE IF NOT EXISTS case_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id INTEGER NOT NULL REFERENCES agent_queue(id),
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    at REAL NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
    queue_id INTEGER PRIMARY KEY REFERENCES agent_queue(id),
    created_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    agent_id INTEGER REFERENCES agents(id),
    note TEXT,
    done_at REAL
);
CREATE TABLE IF NOT EXISTS desk_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    agent_id INTEGER,
    action TEXT NOT NULL,
    queue_id INTEGER,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS desk_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    queue_id INTEGER,
    agent_id INTEGER
);
