//! Stage-2 LPAE IO page tables (work in progress).
