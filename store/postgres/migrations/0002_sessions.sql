-- MQTT state: persistent sessions, their subscriptions and the messages they
-- are owed, and retained messages (store.SessionStore). A session belongs to
-- the node that holds it (node); another node claims it when its client
-- connects there. expires_at is when the session ends unless its client comes
-- back, in Unix seconds, NULL while the client is connected. record is the
-- store.Session, a subscription's record its options; data is the broker's
-- encoding of a PUBLISH.
CREATE TABLE mqtt_sessions (
    client_id  text COLLATE "C" PRIMARY KEY,
    node       text NOT NULL,
    expires_at bigint,
    record     jsonb NOT NULL
);
CREATE INDEX mqtt_sessions_node ON mqtt_sessions (node);
CREATE INDEX mqtt_sessions_expires ON mqtt_sessions (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE mqtt_subscriptions (
    client_id text COLLATE "C" NOT NULL REFERENCES mqtt_sessions ON DELETE CASCADE,
    filter    text COLLATE "C" NOT NULL,
    record    jsonb NOT NULL,
    PRIMARY KEY (client_id, filter)
);

CREATE TABLE mqtt_messages (
    client_id text COLLATE "C" NOT NULL REFERENCES mqtt_sessions ON DELETE CASCADE,
    seq       bigint NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (client_id, seq)
);

CREATE TABLE mqtt_retained (
    topic text COLLATE "C" PRIMARY KEY,
    data  bytea NOT NULL
);
