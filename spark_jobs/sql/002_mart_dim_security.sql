-- Security dimension with history (SCD type 2), mirroring gold.dim_security.

CREATE TABLE mart.dim_security (
    symbol          text    NOT NULL,
    name            text,
    exchange        text,
    currency        text,
    country         text,
    sector          text,
    industry        text,
    valid_from      date    NOT NULL,
    valid_to        date,
    is_current      boolean NOT NULL,
    load_id         text    NOT NULL,
    schema_version  text    NOT NULL,
    CONSTRAINT dim_security_pk PRIMARY KEY (symbol, valid_from),
    CONSTRAINT dim_security_valid_range CHECK (valid_to IS NULL OR valid_to >= valid_from)
);

-- At most one current version per symbol; the lookup BI joins use.
CREATE UNIQUE INDEX dim_security_current ON mart.dim_security (symbol) WHERE is_current;
CREATE INDEX dim_security_sector ON mart.dim_security (sector, industry) WHERE is_current;

COMMENT ON TABLE mart.dim_security IS 'Securities with attribute history (SCD2). Replaced in full by each load.';
COMMENT ON COLUMN mart.dim_security.symbol IS 'Ticker as the market API spells it, e.g. AAPL, BRK.B.';
COMMENT ON COLUMN mart.dim_security.name IS 'Company name.';
COMMENT ON COLUMN mart.dim_security.exchange IS 'Listing exchange, e.g. NASDAQ, NYSE.';
COMMENT ON COLUMN mart.dim_security.currency IS 'Trading currency (ISO 4217).';
COMMENT ON COLUMN mart.dim_security.country IS 'Country of the issuer.';
COMMENT ON COLUMN mart.dim_security.sector IS 'Sector classification.';
COMMENT ON COLUMN mart.dim_security.industry IS 'Industry classification.';
COMMENT ON COLUMN mart.dim_security.valid_from IS 'First day this version of the attributes was valid.';
COMMENT ON COLUMN mart.dim_security.valid_to IS 'Last day this version was valid; NULL for the current version.';
COMMENT ON COLUMN mart.dim_security.is_current IS 'True for the current version of the symbol.';
COMMENT ON COLUMN mart.dim_security.load_id IS 'ADF pipeline run id of the gold run that produced the row.';
COMMENT ON COLUMN mart.dim_security.schema_version IS 'Version of the gold table contract the row was written under.';
