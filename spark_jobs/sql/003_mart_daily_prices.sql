-- Daily prices with returns and rolling metrics, mirroring gold.fct_daily_prices.

CREATE TABLE mart.daily_prices (
    symbol          text             NOT NULL,
    trade_date      date             NOT NULL,
    open            double precision NOT NULL,
    high            double precision NOT NULL,
    low             double precision NOT NULL,
    close           double precision NOT NULL,
    adj_close       double precision NOT NULL,
    volume          bigint           NOT NULL,
    daily_return    double precision,
    log_return      double precision,
    ma_20           double precision,
    ma_50           double precision,
    ma_200          double precision,
    volatility_20d  double precision,
    high_52w        double precision,
    low_52w         double precision,
    drawdown        double precision,
    load_id         text             NOT NULL,
    schema_version  text             NOT NULL,
    CONSTRAINT daily_prices_pk PRIMARY KEY (symbol, trade_date)
);

-- The primary key serves "one symbol over a date range"; this serves "all symbols on a date / range".
CREATE INDEX daily_prices_trade_date ON mart.daily_prices (trade_date);

COMMENT ON TABLE mart.daily_prices IS 'One row per symbol and trading session. A load replaces the rows with trade_date in its window.';
COMMENT ON COLUMN mart.daily_prices.symbol IS 'Ticker, e.g. AAPL.';
COMMENT ON COLUMN mart.daily_prices.trade_date IS 'Trading session (exchange calendar XNYS).';
COMMENT ON COLUMN mart.daily_prices.open IS 'Opening price.';
COMMENT ON COLUMN mart.daily_prices.high IS 'Highest price of the session.';
COMMENT ON COLUMN mart.daily_prices.low IS 'Lowest price of the session.';
COMMENT ON COLUMN mart.daily_prices.close IS 'Closing price, not adjusted.';
COMMENT ON COLUMN mart.daily_prices.adj_close IS 'Close adjusted for splits and dividends.';
COMMENT ON COLUMN mart.daily_prices.volume IS 'Shares traded.';
COMMENT ON COLUMN mart.daily_prices.daily_return IS 'adj_close / previous adj_close - 1; NULL on the first session.';
COMMENT ON COLUMN mart.daily_prices.log_return IS 'ln(adj_close / previous adj_close); NULL on the first session.';
COMMENT ON COLUMN mart.daily_prices.ma_20 IS 'Moving average of adj_close over 20 sessions.';
COMMENT ON COLUMN mart.daily_prices.ma_50 IS 'Moving average of adj_close over 50 sessions.';
COMMENT ON COLUMN mart.daily_prices.ma_200 IS 'Moving average of adj_close over 200 sessions.';
COMMENT ON COLUMN mart.daily_prices.volatility_20d IS 'Standard deviation of daily log returns over 20 sessions.';
COMMENT ON COLUMN mart.daily_prices.high_52w IS 'Highest adj_close over the last 52 weeks.';
COMMENT ON COLUMN mart.daily_prices.low_52w IS 'Lowest adj_close over the last 52 weeks.';
COMMENT ON COLUMN mart.daily_prices.drawdown IS 'adj_close / running maximum of adj_close - 1 (0 at a new high).';
COMMENT ON COLUMN mart.daily_prices.load_id IS 'ADF pipeline run id of the gold run that produced the row.';
COMMENT ON COLUMN mart.daily_prices.schema_version IS 'Version of the gold table contract the row was written under.';
