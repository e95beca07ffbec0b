import PostgresNIO

extension PostgresQuery {
    /// `INSERT INTO <head> VALUES (…), (…) <tail>` with one bound row per element, in order:
    /// many rows in one round trip instead of one statement each. A `nil` column is written as
    /// `NULL` (an `INSERT`'s `VALUES` take their types from the target columns).
    static func insert<Row>(
        _ head: String, rows: some Collection<Row>, tail: String = "", columns: (Row) -> [(any PostgresDynamicTypeEncodable)?]
    ) -> PostgresQuery {
        var sql = StringInterpolation(literalCapacity: head.count + tail.count + rows.count * 48, interpolationCount: rows.count * 12)
        sql.appendLiteral("INSERT INTO \(head) VALUES ")
        for (index, row) in rows.enumerated() {
            sql.appendLiteral(index == 0 ? "(" : ", (")
            for (column, value) in columns(row).enumerated() {
                if column > 0 { sql.appendLiteral(", ") }
                if let value { sql.appendInterpolation(value) } else { sql.appendLiteral("NULL") }
            }
            sql.appendLiteral(")")
        }
        sql.appendLiteral(" \(tail)")
        return PostgresQuery(stringInterpolation: sql)
    }
}
