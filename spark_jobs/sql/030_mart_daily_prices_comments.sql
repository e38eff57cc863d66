-- Column comments of mart.daily_prices as gold.fct_daily_prices' contract defines them: every price-level
-- metric is in the adjusted frame (003 described high_52w / low_52w and volatility_20d otherwise).

COMMENT ON COLUMN mart.daily_prices.symbol IS 'Ticker, e.g. AAPL.';
COMMENT ON COLUMN mart.daily_prices.trade_date IS 'Trading session (exchange calendar XNYS).';
COMMENT ON COLUMN mart.daily_prices.open IS 'Opening price as traded, not adjusted.';
COMMENT ON COLUMN mart.daily_prices.high IS 'Highest price of the session as traded, not adjusted.';
COMMENT ON COLUMN mart.daily_prices.low IS 'Lowest price of the session as traded, not adjusted.';
COMMENT ON COLUMN mart.daily_prices.close IS 'Closing price as traded, not adjusted (the raw close).';
COMMENT ON COLUMN mart.daily_prices.adj_close IS 'Close adjusted for every split and dividend after the session (back-adjusted to the latest price level).';
COMMENT ON COLUMN mart.daily_prices.volume IS 'Shares traded.';
COMMENT ON COLUMN mart.daily_prices.daily_return IS 'adj_close / previous adj_close - 1; NULL on the first session.';
COMMENT ON COLUMN mart.daily_prices.log_return IS 'ln(adj_close / previous adj_close); NULL on the first session.';
COMMENT ON COLUMN mart.daily_prices.ma_20 IS 'Mean of adj_close over the last 20 sessions; NULL before 20 sessions.';
COMMENT ON COLUMN mart.daily_prices.ma_50 IS 'Mean of adj_close over the last 50 sessions; NULL before 50 sessions.';
COMMENT ON COLUMN mart.daily_prices.ma_200 IS 'Mean of adj_close over the last 200 sessions; NULL before 200 sessions.';
COMMENT ON COLUMN mart.daily_prices.volatility_20d IS 'Sample standard deviation of log_return over the last 20 sessions, annualized by sqrt(252); NULL before 20 returns.';
COMMENT ON COLUMN mart.daily_prices.high_52w IS 'Highest adjusted high (high scaled like adj_close) over the last 252 sessions.';
COMMENT ON COLUMN mart.daily_prices.low_52w IS 'Lowest adjusted low (low scaled like adj_close) over the last 252 sessions.';
COMMENT ON COLUMN mart.daily_prices.drawdown IS 'adj_close / highest adj_close so far - 1 (0 at a new high).';
COMMENT ON COLUMN mart.daily_prices.load_id IS 'ADF pipeline run id of the gold run that produced the row.';
COMMENT ON COLUMN mart.daily_prices.schema_version IS 'Version of the gold table contract the row was written under.';
