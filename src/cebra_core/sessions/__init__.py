"""Sessions: what a recording is and how it gets here, the lowest layer (imports no other).

- `files`: atomic writes with normal file modes, `write_table`, `md5sum`;
- `rats`: the published rat dataset's facts (standard library only);
- `validation`: a session's arrays checked for use, `SessionError`;
- `data`: session files read (.jl after its MD5, .npz, .parquet, .nwb) and session tables written;
- `nwb`: NWB files (pynwb); `download`: the published rats fetched and verified;
- `simulate`: the place-cell simulator behind the sample data.
"""
