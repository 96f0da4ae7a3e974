//! graft-data
