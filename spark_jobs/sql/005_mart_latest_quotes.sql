-- Latest intraday quote per symbol, mirroring gold.latest_quotes.

CREATE TABLE mart.latest_quotes (
    symbol              text             NOT NULL,
    price               double precision NOT NULL,
    open                double precision,
    high                double precision,
    low                 double precision,
    volume              bigint,
    previous_close      double precision,
    change              double precision,
    change_percent      double precision,
    latest_trading_day  date             NOT NULL,
    quote_time          timestamptz      NOT NULL,
    load_id             text             NOT NULL,
    schema_version      text             NOT NULL,
    CONSTRAINT latest_quotes_pk PRIMARY KEY (symbol)
);

CREATE INDEX latest_quotes_trading_day ON mart.latest_quotes (latest_trading_day);

COMMENT ON TABLE mart.latest_quotes IS 'The most recent quote of each symbol. Replaced in full by each load.';
COMMENT ON COLUMN mart.latest_quotes.symbol IS 'Ticker, e.g. AAPL.';
COMMENT ON COLUMN mart.latest_quotes.price IS 'Last traded price.';
COMMENT ON COLUMN mart.latest_quotes.open IS 'Open of the latest trading day.';
COMMENT ON COLUMN mart.latest_quotes.high IS 'High of the latest trading day.';
COMMENT ON COLUMN mart.latest_quotes.low IS 'Low of the latest trading day.';
COMMENT ON COLUMN mart.latest_quotes.volume IS 'Shares traded on the latest trading day.';
COMMENT ON COLUMN mart.latest_quotes.previous_close IS 'Close of the previous trading day.';
COMMENT ON COLUMN mart.latest_quotes.change IS 'price - previous_close.';
COMMENT ON COLUMN mart.latest_quotes.change_percent IS 'Change in percent of previous_close (2.5 means 2.5%).';
COMMENT ON COLUMN mart.latest_quotes.latest_trading_day IS 'Trading day the quote belongs to.';
COMMENT ON COLUMN mart.latest_quotes.quote_time IS 'When the quote was fetched (UTC).';
COMMENT ON COLUMN mart.latest_quotes.load_id IS 'ADF pipeline run id of the gold run that produced the row.';
COMMENT ON COLUMN mart.latest_quotes.schema_version IS 'Version of the gold table contract the row was written under.';
