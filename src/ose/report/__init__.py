"""Everything a person or a tool reads after the search: tables, results files, exports."""
