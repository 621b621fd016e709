//! Partition tables: MBR (with extended/logical partitions) and GPT.
