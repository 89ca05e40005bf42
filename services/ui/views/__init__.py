"""The UI pages, run by ``st.navigation`` in ``services/ui/app.py``; they only render."""
