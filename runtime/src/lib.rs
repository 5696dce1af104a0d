//! Runtime support for archc-generated models.
