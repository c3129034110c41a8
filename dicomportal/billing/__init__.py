"""The billing domain: plain Python over our own tables. No flask.request, no templates."""
