-- Monthly performance per symbol, mirroring gold.fct_monthly_performance.

CREATE TABLE mart.monthly_performance (
    symbol          text             NOT NULL,
    month           date             NOT NULL,
    open            double precision NOT NULL,
    high            double precision NOT NULL,
    low             double precision NOT NULL,
    close           double precision NOT NULL,
    adj_close       double precision NOT NULL,
    volume          bigint           NOT NULL,
    monthly_return  double precision,
    trading_days    integer          NOT NULL,
    load_id         text             NOT NULL,
    schema_version  text             NOT NULL,
    CONSTRAINT monthly_performance_pk PRIMARY KEY (symbol, month),
    CONSTRAINT monthly_performance_first_day CHECK (extract(day FROM month) = 1)
);

CREATE INDEX monthly_performance_month ON mart.monthly_performance (month);

COMMENT ON TABLE mart.monthly_performance IS 'One row per symbol and calendar month. A load replaces every month its window touches.';
COMMENT ON COLUMN mart.monthly_performance.symbol IS 'Ticker, e.g. AAPL.';
COMMENT ON COLUMN mart.monthly_performance.month IS 'First day of the calendar month.';
COMMENT ON COLUMN mart.monthly_performance.open IS 'Open of the first session of the month.';
COMMENT ON COLUMN mart.monthly_performance.high IS 'Highest price of the month.';
COMMENT ON COLUMN mart.monthly_performance.low IS 'Lowest price of the month.';
COMMENT ON COLUMN mart.monthly_performance.close IS 'Close of the last session of the month.';
COMMENT ON COLUMN mart.monthly_performance.adj_close IS 'Adjusted close of the last session of the month.';
COMMENT ON COLUMN mart.monthly_performance.volume IS 'Shares traded in the month.';
COMMENT ON COLUMN mart.monthly_performance.monthly_return IS 'adj_close / previous month adj_close - 1; NULL for the first month.';
COMMENT ON COLUMN mart.monthly_performance.trading_days IS 'Sessions in the month with a price.';
COMMENT ON COLUMN mart.monthly_performance.load_id IS 'ADF pipeline run id of the gold run that produced the row.';
COMMENT ON COLUMN mart.monthly_performance.schema_version IS 'Version of the gold table contract the row was written under.';
