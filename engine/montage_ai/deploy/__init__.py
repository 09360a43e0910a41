"""Deployment helpers: the `.env.example` generated from the settings model, and the
`docker run` command line that `./montage-ai.sh --docker` uses."""
