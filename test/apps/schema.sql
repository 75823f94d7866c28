-- The tables the driver examples in test/apps write to (test/t/026_drivers.pl
-- creates them in a database with asyncwrite).
CREATE TABLE app_events (
    id      bigserial PRIMARY KEY,
    source  text NOT NULL,          -- the example that queued it
    kind    text NOT NULL,          -- 'autocommit' or 'transaction'
    payload jsonb                   -- with a "run" key naming one run of it
);
CREATE TABLE app_settings (
    name    text PRIMARY KEY,       -- the example that queued it
    value   jsonb
);
