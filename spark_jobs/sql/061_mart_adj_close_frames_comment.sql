-- mart.daily_prices.adj_close as gold.fct_daily_prices' contract (2.0.0) defines it: gold stores price levels in
-- the forward frame, the mart serves them times the symbol's current factor (the values readers see are unchanged).

COMMENT ON COLUMN mart.daily_prices.adj_close IS 'Close adjusted for splits and dividends. The mart serves it back-adjusted to the latest price level (close times the factors of every later event); gold stores it forward-adjusted (close divided by the factors of every event on or before the session, unchanged by later events) and serving multiplies it by the symbol''s current factor.';
